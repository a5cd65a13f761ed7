"""The exceptions unique_xr raises.

Every error names what was seen and how to fix it. Each class also subclasses the builtin a
caller would naturally catch (``ValueError``, ``LookupError``, ``OSError``, ``ImportError``), so
``except ValueError`` keeps working for code that does not know about unique_xr.
"""

from __future__ import annotations


class UniqueXrError(Exception):
    """Base class of every error raised on purpose by unique_xr."""


class MissingDependencyError(UniqueXrError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class SpecError(UniqueXrError, ValueError):
    """A spec (grid, search, collection) was built with invalid values."""


class GridError(SpecError):
    """A target grid is ill-formed (bounds not a whole number of pixels, bad resolution...)."""


class CRSError(UniqueXrError, ValueError):
    """A coordinate reference system is unknown, geographic where a projected one is needed, or mismatched."""


class UnknownCollectionError(UniqueXrError, LookupError):
    """A collection name is not in the registry."""


class UnknownAssetError(UniqueXrError, LookupError):
    """An asset (band) name is not defined for a collection, or missing from an item."""


class EmptySearchError(UniqueXrError, LookupError):
    """A STAC search returned no items."""


class SearchError(UniqueXrError, RuntimeError):
    """A STAC API could not be reached or answered with an error after retries."""


class AssetReadError(UniqueXrError, OSError):
    """A raster asset could not be read: corrupt, truncated, not a raster, or unreachable."""


class AllFillError(UniqueXrError, ValueError):
    """Every pixel of a tile or cube is fill / nodata: nothing valid was read."""


class AllMaskedError(UniqueXrError, ValueError):
    """Every pixel was removed by a QA/cloud mask: nothing clear is left."""


class UnitsError(UniqueXrError, ValueError):
    """Values are outside the physically valid range for their declared units (e.g. a scale applied twice)."""


class MissingVariableError(UniqueXrError, KeyError):
    """A variable the computation needs is not in the dataset."""

    def __str__(self) -> str:  # KeyError would otherwise print the repr of the message
        return str(self.args[0]) if self.args else ""


class CacheError(UniqueXrError, OSError):
    """A Zarr cache is missing, incomplete, or was written by an incompatible spec."""


class ModelFolderError(UniqueXrError, FileNotFoundError):
    """A model folder is incomplete, damaged (a file that does not match its recorded checksum) or not a model."""


class CnnFolderError(ModelFolderError):
    """An annual-CNN model folder is missing, incomplete or damaged."""


class DownscaleInputError(UniqueXrError, ValueError):
    """Inputs to fit or predict a downscaling model do not match what the model needs."""


class OutputPathError(UniqueXrError, OSError):
    """An output path cannot be written: it is a file where a folder is needed, or not writable."""


class TowerDataError(UniqueXrError, ValueError):
    """A tower file or table has a layout unique_xr does not know, duplicate keys, or unusable values."""


class TowerFileWarning(UserWarning):
    """A tower file was readable but not clean (e.g. truncated upstream); the message says what was dropped."""


class NotFittedError(UniqueXrError, ValueError):
    """A model or baseline was asked to predict before it was fitted."""


class FoldLeakageError(SpecError):
    """Cross-validation folds put one site (or row) on both sides of a split."""


class CubeStoreError(UniqueXrError, OSError):
    """A cube store cannot be used: made from another job spec, damaged, or a unit failed to write."""
