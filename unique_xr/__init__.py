"""unique_xr: daily 30 m gross primary productivity from satellite imagery, lazily, on Dask.

The pipeline flows one way and the subpackages follow it::

    search -> load -> features -> models -> downscale -> write

Importing the package is cheap: heavy dependencies (stackstac, pystac-client, torch, lightgbm)
are imported by the functions that need them. Importing it registers the ``.gpp`` accessor on
xarray objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unique_xr import accessor as _accessor  # noqa: F401  (registers ds.gpp / da.gpp)
from unique_xr._lazy import lazy_attributes
from unique_xr.errors import UniqueXrError
from unique_xr.grid import GridSpec

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first use so `import unique_xr` stays fast
_LAZY: dict[str, str] = {
    "search": "unique_xr.search",  # callable subpackage: unique_xr.search(...) -> search.stac.search
    "load": "unique_xr.load",  # callable subpackage: unique_xr.load(...) -> load.stack.load
    "SearchSpec": "unique_xr.search.stac",
    "get_collection": "unique_xr.search.collections",
    "list_collections": "unique_xr.search.collections",
    "apply_qa_mask": "unique_xr.load.masks",
    "to_zarr": "unique_xr.load.cache",
    "open_zarr": "unique_xr.load.cache",
    "indices": "unique_xr.features.indices",
    "towers": "unique_xr.towers",
    "models": "unique_xr.models",
    "load_model": "unique_xr.models.lgbm",
    "CubeJobSpec": "unique_xr.pipeline.spec",
    "run_cube": "unique_xr.pipeline.job",
    "open_cube": "unique_xr.write.store",
}

__all__ = ["GridSpec", "UniqueXrError", "__version__", *_LAZY]


# subpackages resolve to the module itself, everything else to the attribute of its module
__getattr__ = lazy_attributes(__name__, _LAZY, modules=frozenset({"indices", "search", "load", "towers", "models"}))[0]


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from unique_xr.features import indices
    from unique_xr.load.cache import open_zarr, to_zarr
    from unique_xr import models, towers
    from unique_xr.load.masks import apply_qa_mask
    from unique_xr.models.lgbm import load_model
    from unique_xr import load, search
    from unique_xr.search.collections import get_collection, list_collections
    from unique_xr.search.stac import SearchSpec
    from unique_xr.pipeline.spec import CubeJobSpec
    from unique_xr.pipeline.job import run_cube
    from unique_xr.write.store import open_cube
