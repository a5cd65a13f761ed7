"""Jobs: the stages of the chain put together (orchestration only).

* :mod:`unique_xr.pipeline.spec`: :class:`CubeJobSpec`, the national-cube job's spec (from TOML).
* :mod:`unique_xr.pipeline.units`: the work units a region is cut into.
* :mod:`unique_xr.pipeline.stages`: lazy builders, one shape ``(spec, unit, upstream) -> datasets``.
* :mod:`unique_xr.pipeline.job`: :func:`run_cube`, units in waves into a resumable Icechunk store.
* :mod:`unique_xr.pipeline.demo`: the demo on the embedded sample region (whole stores per stage).
"""

from __future__ import annotations

from unique_xr._lazy import lazy_attributes

_LAZY: dict[str, str] = {
    **{name: "unique_xr.pipeline.demo" for name in (
        "GPP_STAGES", "DataLayerResult", "DataLayerSpec", "DemoResult", "DownscaleResult", "GppResult",
        "build_data_layer", "build_downscaled_gpp", "build_gpp", "latest_valid", "run_data_layer", "run_demo",
        "run_downscale_gpp", "run_gpp", "with_drivers")},
    **{name: "unique_xr.pipeline.spec" for name in ("CubeJobSpec", "read_spec")},
    **{name: "unique_xr.pipeline.job" for name in ("run_cube", "CubeResult")},
}

__all__ = sorted(_LAZY)
__getattr__ = lazy_attributes(__name__, _LAZY)[0]


def __dir__() -> list[str]:
    return __all__
