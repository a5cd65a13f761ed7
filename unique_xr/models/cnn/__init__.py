"""The gap-tolerant CNN for annual forest GPP and NEE (Wu, EGU2020-2135).

The flow inside this package::

    tables (unique_xr.towers.forest) or cubes (cube) -> featuremap (one 2-D map per location-year)
        -> model.fit_cnn (occlusion training, occlusion) -> AnnualCNN + card.json
        -> AnnualCNN.predict (tables) / cube.estimate_annual (cubes, lazy)
    compare: the CNN and three classic models in the same site-grouped folds, at 0-50 % missing
    attribution: occlusion sensitivity over the feature map, by forest type

torch is imported by the functions that need it.
"""

from __future__ import annotations

from unique_xr._lazy import lazy_attributes

_LAZY: dict[str, str] = {
    "MapSpec": "unique_xr.models.cnn.featuremap",
    "FeatureMaps": "unique_xr.models.cnn.featuremap",
    "TIME_STEPS": "unique_xr.models.cnn.featuremap",
    "feature_maps_from_table": "unique_xr.models.cnn.featuremap",
    "Occlusion": "unique_xr.models.cnn.occlusion",
    "occlude": "unique_xr.models.cnn.occlusion",
    "hide_at_random": "unique_xr.models.cnn.occlusion",
    "AnnualCNN": "unique_xr.models.cnn.model",
    "CnnConfig": "unique_xr.models.cnn.model",
    "fit_cnn": "unique_xr.models.cnn.model",
    "load_cnn": "unique_xr.models.cnn.model",
    "estimate_annual": "unique_xr.models.cnn.cube",
    "feature_maps_from_cube": "unique_xr.models.cnn.cube",
    "to_feature_maps": "unique_xr.models.cnn.cube",
    "compare_models": "unique_xr.models.cnn.compare",
    "Comparison": "unique_xr.models.cnn.compare",
    "CLASSIC_MODELS": "unique_xr.models.cnn.compare",
    "missingness_figure": "unique_xr.models.cnn.compare",
    "occlusion_sensitivity": "unique_xr.models.cnn.attribution",
    "variable_importance": "unique_xr.models.cnn.attribution",
    "step_importance": "unique_xr.models.cnn.attribution",
    "by_forest_type": "unique_xr.models.cnn.attribution",
    "attribution_figure": "unique_xr.models.cnn.attribution",
    "train_from_table": "unique_xr.models.cnn.run",
    "predict_table": "unique_xr.models.cnn.run",
    "load_training_set": "unique_xr.models.cnn.run",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
