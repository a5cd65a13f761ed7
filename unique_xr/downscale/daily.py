"""Daily GPP_M downscaled onto a 30 m grid by a scheme-S2 model, as one lazy Dataset with CF attributes.

The demo's downscaling stage (:func:`unique_xr.pipeline.demo.run_downscale_gpp` writes it); the
national cube job downscales work units with :func:`unique_xr.downscale.blockwise.downscale_window`
instead, on a coarse grid nested in the output grid.
"""

from __future__ import annotations

from typing import Any

from unique_xr.errors import MissingVariableError
from unique_xr.grid import GridSpec

__all__ = ["build_downscaled_gpp"]


def build_downscaled_gpp(gpp_500m, static, grid: GridSpec, model, *, members: int = 4, steps: int | None = None,
                         seed: int = 0, attrs: dict[str, Any] | None = None):
    """Daily GPP_M downscaled onto the 30 m ``grid`` by a scheme-S2 diffusion model (lazy, nothing computes).

    The 500 m field is resampled bilinearly onto ``grid``
    (:func:`unique_xr.downscale.regrid.coarse_onto_grid`, as the model was trained) and downscaled
    tile by tile with the auxiliaries the model was trained with, taken by name from ``static``.

    Parameters
    ----------
    gpp_500m
        Dataset with ``gpp`` ``(time, y, x)`` as :func:`build_gpp` writes ``gpp_500m``.
    static
        The data layer's ``static_30m`` cube on ``grid`` (``elevation``, ``frac_*``).
    model
        A :class:`~unique_xr.downscale.model.Downscaler` or its folder.
    members, steps, seed
        Ensemble size, DDIM steps (default: the model's) and noise seed.

    Returns
    -------
    xarray.Dataset
        ``gpp`` (ensemble mean) and ``gpp_spread`` (member standard deviation), float32,
        g m-2 d-1, on ``grid`` at every time of ``gpp_500m``; NaN where GPP_M is missing.
    """
    from unique_xr.downscale import downscale, load_downscaler
    from unique_xr.downscale.model import Downscaler
    from unique_xr.downscale.regrid import coarse_onto_grid
    from unique_xr.schema import cf_attrs

    if not isinstance(model, Downscaler):
        model = load_downscaler(model)
    names = [a.name for a in model.norm.aux]
    lacking = [n for n in names if n not in static]
    if lacking:
        raise MissingVariableError(
            f"The downscaling model was trained with the auxiliaries {names}; {lacking} not in the static cube "
            f"({sorted(map(str, static.data_vars))}). Build the data layer with a DEM and land cover."
        )
    aux = [static[n] for n in names]
    # one task per static chunk and day
    coarse = coarse_onto_grid(gpp_500m["gpp"], grid)
    out = downscale(coarse, model, aux=aux, members=members, steps=steps, seed=seed, name="gpp")
    out = out[["gpp", "gpp_spread"]] if members > 1 else out[["gpp"]]
    token = out.attrs["model_token"]
    steps = steps or model.config.sample_steps
    base = {k: v for k, v in cf_attrs("gpp").items() if k != "valid_range"}
    out["gpp"].attrs = {**base, "grid_mapping": "spatial_ref",
                        "long_name": "gross primary productivity: GPP_M (500 m) downscaled to 30 m by the "
                                     f"scheme-{model.scheme.upper()} diffusion model, mean of {members} members",
                        "cell_methods": "time: mean", "model_token": token}
    if "gpp_spread" in out:
        out["gpp_spread"].attrs = {"units": base["units"], "grid_mapping": "spatial_ref",
                                   "long_name": f"standard deviation of the {members} downscaled ensemble members",
                                   "model_token": token}
    out.attrs = {
        "source": f"unique_xr diffusion downscaling (scheme {model.scheme}) of GPP_M",
        "inputs": "gpp_500m (bilinear onto the 30 m grid) + static_30m: " + ", ".join(names),
        "model_token": token, "downscaling_scheme": model.scheme,
        "downscaling_members": members, "downscaling_sampler": model.config.sampler, "downscaling_steps": steps,
        "downscaling_seed": seed, **(attrs or {}),
    }
    return out
