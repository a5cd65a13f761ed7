"""The GPP stage on cubes: the data layer's reflectance and drivers + tower-trained models -> daily GPP (lazy).

Used by the demo (:func:`unique_xr.pipeline.demo.run_gpp`) and, per work unit, by the national cube
job (:func:`unique_xr.pipeline.stages.gpp_stage`).
"""

from __future__ import annotations

from typing import Any

from unique_xr.errors import MissingVariableError, SpecError
from unique_xr.features.combine import with_drivers

__all__ = ["GPP_STAGES", "build_gpp"]

#: model kind -> (reflectance cube, drivers cube on the same grid, GPP store written)
GPP_STAGES: dict[str, tuple[str, str, str]] = {
    "gpp_l": ("landsat_30m", "meteo_30m", "gpp_30m"),
    "gpp_m": ("modis_500m", "meteo_500m", "gpp_500m"),
}


def build_gpp(cubes: dict[str, Any], models: dict[str, Any], *, allow_missing: dict[str, Any] | None = None,
              engine: str = "lightgbm", attrs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Lazy daily GPP cubes from the data layer's cubes and tower-trained models (nothing computes).

    Parameters
    ----------
    cubes
        ``{name: Dataset}`` as :func:`build_data_layer` makes them, or opened from its stores:
        ``landsat_30m`` and ``meteo_30m`` for GPP_L, ``modis_500m`` and ``meteo_500m`` for GPP_M
        (see :data:`GPP_STAGES`).
    models
        ``{kind: model}`` with kind ``"gpp_l"`` and/or ``"gpp_m"``; a model is a
        :class:`~unique_xr.models.lgbm.GppModel` or a directory written by ``unique-xr train``.
    allow_missing
        ``{kind: inputs}``: model inputs knowingly absent from the cubes (see
        :func:`~unique_xr.models.estimate.estimate`). They are recorded in the ``inputs_absent``
        attribute of each output and of its ``gpp`` variable.
    engine
        Tree engine, ``"lightgbm"`` or ``"lleaves"``.
    attrs
        Extra global attributes of every output (for example a ``comment``).

    Returns
    -------
    dict
        ``{"gpp_30m": Dataset, "gpp_500m": Dataset}`` for the kinds given, each with ``gpp``
        (float32, g m-2 d-1, NaN where the reflectance is missing) and ``n_valid_features``, on the
        reflectance cube's grid and times.
    """
    from unique_xr.models.lgbm import GppModel, load_model

    allow_missing = dict(allow_missing or {})
    unknown = sorted((set(models) | set(allow_missing)) - set(GPP_STAGES))
    if unknown:
        raise SpecError(f"Unknown model kinds {unknown}; build_gpp knows {sorted(GPP_STAGES)}.")
    out: dict[str, Any] = {}
    for kind, model in models.items():
        reflectance, drivers, name = GPP_STAGES[kind]
        lacking = [c for c in (reflectance, drivers) if c not in cubes]
        if lacking:
            raise MissingVariableError(
                f"The {kind} model needs the cubes {reflectance!r} and {drivers!r}; {lacking} not in {sorted(cubes)}. "
                "Build the data layer with the matching collection and a met_path (DataLayerSpec)."
            )
        if not isinstance(model, GppModel):
            model = load_model(model)
        if model.card.kind != kind:
            raise SpecError(f"The model given as {kind!r} is a {model.card.kind!r} model; pass it under that key.")
        absent = tuple(allow_missing.get(kind, ()))
        ds = with_drivers(cubes[reflectance], cubes[drivers])
        gpp = ds.gpp.estimate(model, engine=engine, allow_missing=absent)
        note = ", ".join(absent) or "none"
        gpp["gpp"].attrs["inputs_absent"] = note
        gpp.attrs.update({"inputs": f"{reflectance} + {drivers}", "inputs_absent": note, **(attrs or {})})
        out[name] = gpp
    return out
