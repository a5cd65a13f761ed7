"""Tower-trained GPP models: features, LightGBM, cross-validation, baselines and model cards.

The flow inside this package::

    features (raw columns or cube variables -> features of a Recipe)
        -> lgbm.train (site-grouped CV with cv, baselines in the same folds) -> GppModel + ModelCard
        -> GppModel.predict / load_model (tables)
        -> estimate (cubes, blockwise on Dask; tree engines and the model handle in engines)

Heavy dependencies (lightgbm) are imported by the functions that need them.
"""

from __future__ import annotations

from unique_xr._lazy import lazy_attributes

_LAZY: dict[str, str] = {
    "train": "unique_xr.models.lgbm",
    "TrainConfig": "unique_xr.models.lgbm",
    "TrainResult": "unique_xr.models.lgbm",
    "GppModel": "unique_xr.models.lgbm",
    "load_model": "unique_xr.models.lgbm",
    "ModelCard": "unique_xr.models.card",
    "ModelHandle": "unique_xr.models.engines",
    "Recipe": "unique_xr.models.features",
    "RECIPES": "unique_xr.models.features",
    "features_from_table": "unique_xr.models.features",
    "site_folds": "unique_xr.models.cv",
    "spatial_block_folds": "unique_xr.models.cv",
    "inner_split": "unique_xr.models.cv",
    "check_no_leakage": "unique_xr.models.cv",
    "metrics": "unique_xr.models.scores",
    "aggregate": "unique_xr.models.scores",
    "score_table": "unique_xr.models.scores",
    "LinearVI": "unique_xr.models.baselines",
    "LightUseEfficiency": "unique_xr.models.baselines",
    "PModelColumn": "unique_xr.models.baselines",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
