"""Does the 30 m cube carry field-scale structure? Its GPP against GPP_L on a Landsat day, beside bicubic GPP_M.

On a Landsat day GPP_L (the tower-trained Landsat model at 30 m) is the best 30 m reference the job
can compute. :func:`structure_check` correlates the cube's downscaled GPP with it, pixel by pixel, on
work units the job's downscaler was **not** fitted on (so neither those pixels nor, for scheme S3,
that day's own GPP_L reached the model: its prior is the latest GPP_L strictly before the day), and
does the same for GPP_M interpolated bicubically to 30 m (what a downscaler that adds no detail
gives). ``unique-xr cube run --sample`` prints the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["structure_check"]


def structure_check(spec, out: str | Path, *, date: str | None = None, items=None) -> dict[str, Any]:
    """Pearson r at 30 m of the cube's GPP and of bicubic GPP_M with GPP_L on ``date``, on units not fitted on.

    Parameters
    ----------
    spec
        The job's :class:`~unique_xr.pipeline.spec.CubeJobSpec` (with ``gpp_l``).
    out
        The job's output folder (the cube and ``downscaler/``).
    date
        A Landsat day of the period (default: the last one).

    Returns
    -------
    dict
        ``date``, ``units`` (held out), ``pixels``, ``r_downscaled``, ``r_bicubic``, and the RMSE of each.
    """
    import pandas as pd

    from unique_xr.downscale import load_downscaler
    from unique_xr.downscale.baselines import bicubic
    from unique_xr.downscale.metrics import pearson_r, rmse
    from unique_xr.errors import SpecError
    from unique_xr.models.lgbm import load_model
    from unique_xr.pipeline import stages
    from unique_xr.pipeline.units import plan_units
    from unique_xr.write.store import open_cube

    out = Path(out)
    if spec.gpp_l is None:
        raise SpecError("The structure check compares with GPP_L: the spec needs [models] gpp_l.")
    items = items or stages.search_inputs(spec, landsat=True)
    in_period = [d for d in stages.landsat_dates(items[stages.LANDSAT]) if spec.start <= d <= spec.end]
    date = date or (in_period[-1] if in_period else None)
    if date not in in_period:
        raise SpecError(f"{date!r} is not a Landsat day of the period (those are {in_period}).")
    card = load_downscaler(out / "downscaler").card if (out / "downscaler" / "card.json").is_file() else {}
    fitted = {u.split("@")[0] for u in card.get("fitted_on", [])}
    fine, _ = spec.grids
    units = [u for u in plan_units(fine.shape, size=spec.unit_size, n_days=len(spec.days), unit_days=spec.unit_days)
             if u.days[0] == 0 and u.id not in fitted]
    cube = open_cube(out)["gpp"].sel(time=pd.Timestamp(date))
    models = {"gpp_m": load_model(spec.gpp_m), "gpp_l": load_model(spec.gpp_l)}
    truth, down, bic = [], [], []
    for unit in units:
        window = (unit.rows[0], unit.rows[1], unit.cols[0], unit.cols[1])
        cubes = stages.data_layer(spec, items, window, days=[date], landsat_days=[date], static=False,
                                  landsat_may_be_cloudy=True)
        if "landsat" not in cubes:
            continue
        gpp = stages.gpp_stage(spec, cubes, models, days=[date])
        gl = np.asarray(gpp["gpp_l"].isel(time=0).transpose("y", "x").values, dtype=np.float64)
        gm = np.asarray(gpp["gpp_m"].isel(time=0).transpose("y", "x").values, dtype=np.float64)
        truth.append(gl.ravel())
        bic.append(bicubic(gm, spec.coarse_factor, shape=gl.shape).ravel())
        down.append(np.asarray(cube.isel(y=slice(*unit.rows), x=slice(*unit.cols)).values, np.float64).ravel())
    if not truth:
        raise SpecError(f"No unit outside the downscaler's fitting units has Landsat on {date}.")
    t, d, b = (np.concatenate(v) for v in (truth, down, bic))
    ok = np.isfinite(t) & np.isfinite(d) & np.isfinite(b)
    return {"date": date, "units": _ids(units), "pixels": int(ok.sum()),
            "r_downscaled": pearson_r(d[ok], t[ok]), "r_bicubic": pearson_r(b[ok], t[ok]),
            "rmse_downscaled": rmse(d[ok], t[ok]), "rmse_bicubic": rmse(b[ok], t[ok]),
            "scheme": card.get("scheme"), "fitted_on": sorted(card.get("fitted_on", []))}


def _ids(units: Sequence[Any]) -> list[str]:
    return [u.id for u in units]
