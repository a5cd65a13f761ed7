"""The ``.gpp`` accessor on xarray Datasets (DataArrays get one when a method needs it).

Each method only hands off to a function in the pipeline modules; the accessor holds the object
and nothing else (xarray caches accessors and hides errors raised in ``__init__``).
"""

from __future__ import annotations

import xarray as xr


@xr.register_dataset_accessor("gpp")
class GppDatasetAccessor:
    """``ds.gpp``: unique_xr operations on a cube."""

    def __init__(self, obj: xr.Dataset) -> None:
        self._obj = obj

    def mask(self, collection, **kwargs) -> xr.Dataset:
        """Mask cloudy / fill pixels with the collection's QA layout; see :func:`unique_xr.load.masks.apply_qa_mask`."""
        from unique_xr.load.masks import apply_qa_mask

        return apply_qa_mask(self._obj, collection, **kwargs)

    def indices(self, names=("ndvi", "evi"), **kwargs) -> xr.Dataset:
        """Add vegetation indices; see :func:`unique_xr.features.indices.add_indices`."""
        from unique_xr.features.indices import add_indices

        return add_indices(self._obj, names, **kwargs)

    def estimate(self, model, **kwargs) -> xr.Dataset:
        """Daily GPP with a tower-trained model, blockwise and lazy; see :func:`unique_xr.models.estimate.estimate`."""
        from unique_xr.models.estimate import estimate

        return estimate(self._obj, model, **kwargs)

    def estimate_annual(self, model, **kwargs) -> xr.Dataset:
        """Annual forest GPP/NEE maps with the gap-tolerant CNN, lazy; see :func:`unique_xr.models.cnn.cube.estimate_annual`."""
        from unique_xr.models.cnn.cube import estimate_annual

        return estimate_annual(self._obj, model, **kwargs)

    def downscale(self, model, *, variable: str = "gpp", **kwargs) -> xr.Dataset:
        """Diffusion-downscale ``variable`` to the fine grid, tiled and lazy; see :func:`unique_xr.downscale.api.downscale`."""
        from unique_xr.downscale.api import downscale

        return downscale(self._obj[variable], model, **kwargs)

    def to_zarr(self, store, **kwargs):
        """Write this stage to a Zarr v3 cache; see :func:`unique_xr.load.cache.to_zarr`."""
        from unique_xr.load.cache import to_zarr

        return to_zarr(self._obj, store, **kwargs)

    def summary(self, by="land_cover", **kwargs) -> xr.Dataset:
        """Daily means (or period sums) per class of ``by`` and for the region, lazy; see :func:`unique_xr.write.summary.summarise`."""
        from unique_xr.write.summary import summarise

        return summarise(self._obj, by=by, **kwargs)
