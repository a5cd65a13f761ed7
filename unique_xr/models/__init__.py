"""Tower-trained GPP models: features, LightGBM, cross-validation, baselines and model cards."""
