"""LightGBM GPP models (UNIQUE step 1): training with site-grouped cross-validation, prediction.

:func:`train` takes a tower table (one row per site-day, raw satellite and meteorological
columns, an observed GPP column), derives the recipe's features, scores LightGBM and the baselines
in the same site-grouped folds on the same rows, fits the final model on every site, and returns a
:class:`TrainResult` whose :class:`GppModel` saves to a directory with its model card.

Target
    The trees learn GPP per unit of incoming radiation (a light-use-efficiency-like quantity) and
    predictions are multiplied back: ``gpp = f(x) * max(R, 25 W m-2)`` with ``R`` the day's
    shortwave radiation where the table has it and ``0.55 R_toa`` (a typical all-sky
    transmissivity; only a scale, the trees learn the rest) where it does not. The loss is Huber
    (``alpha = 2``), which is less pulled by the noisy single days of eddy-covariance GPP. On the
    shared daily table (leave-site-out, all rows) the daily RMSE was 2.18 g C m-2 d-1 for GPP per
    R_toa with squared loss, 2.16 with Huber loss and 2.13 per shortwave with Huber loss.
Early stopping
    Inside each outer training fold a site-grouped inner split picks the number of trees; the model
    is then refitted on the whole training fold with that number. No test-site row is ever seen.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unique_xr._files import SHA256_KEY, check_model_files, write_csv, write_model_folder
from unique_xr._optional import import_optional
from unique_xr.errors import MissingVariableError, ModelFolderError, SpecError
from unique_xr.models import baselines as bl
from unique_xr.models import cv
from unique_xr.models import scores as scoring
from unique_xr.models.card import CARD_FILE, MODEL_FILE, ModelCard, library_versions
from unique_xr.models.features import (
    INPUTS,
    RECIPES,
    Recipe,
    feature_units,
    features_from_table,
)
from unique_xr.schema import check_range

__all__ = ["DEFAULT_PARAMS", "GppModel", "TrainConfig", "TrainResult", "load_model", "read_table", "train"]

RAD_FLOOR = 25.0  # W m-2: keeps the per-radiation target finite in polar winter
CLEAR_FRACTION = 0.55  # R_toa -> shortwave where no shortwave is given (a scale, not a model)

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "huber",
    "alpha": 2.0,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbosity": -1,
}

_TRANSFORMS = ("per_radiation", "per_toa_radiation", "none")
_IGBP_COLUMNS = ("igbp", "igbp_land_use", "IGBP", "classid")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Training and cross-validation settings (all stored in the model card).

    Parameters
    ----------
    kind
        ``"gpp_m"`` (daily MODIS NBAR table) or ``"gpp_l"`` (Landsat table joined with GPP).
    target
        Column of observed GPP in g C m-2 d-1.
    folds, fold_scheme, block_deg
        Outer cross-validation: ``"site"`` (site-grouped K-fold; more folds than sites means
        leave-one-site-out) or ``"block"`` (whole ``block_deg`` latitude/longitude blocks held out).
        ``folds=0`` skips cross-validation.
    params, num_boost_round, early_stopping_rounds, inner_fraction
        LightGBM parameters (merged over :data:`DEFAULT_PARAMS`), the most trees, the patience of
        early stopping and the share of training sites in the inner validation split.
    target_transform
        ``"per_radiation"`` (default: shortwave, else ``0.55 R_toa``), ``"per_toa_radiation"``
        or ``"none"``.
    gpp_range
        Target rows outside this range (g C m-2 d-1) are dropped as implausible; the count is
        reported. A median outside it is a unit mistake and raises.
    min_quality, quality_column
        If the table has a quality column (fraction of measured or good gap-filled data, e.g.
        FLUXNET ``NEE_VUT_REF_QC``), rows below ``min_quality`` are dropped.
    baselines
        Score the linear-VI, light-use-efficiency and P-model baselines in the same folds.
    n_jobs
        LightGBM threads (default 1). Tower tables are small: one thread trains a fold in about a
        second, and more threads only pay off on much larger tables; with other work on the same
        cores (a Dask worker, a second job) OpenMP threads spin-wait and two threads ran six times
        slower than one on these machines.
    """

    kind: str = "gpp_m"
    target: str = "gpp_obs"
    folds: int = 20
    fold_scheme: str = "site"
    block_deg: float = 5.0
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    num_boost_round: int = 1000
    early_stopping_rounds: int = 100
    inner_fraction: float = 0.2
    target_transform: str = "per_radiation"
    gpp_range: tuple[float, float] = (-1.0, 40.0)
    min_quality: float | None = None
    quality_column: str | None = None
    baselines: bool = True
    n_jobs: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in RECIPES:
            raise SpecError(f"kind must be one of {sorted(RECIPES)}, got {self.kind!r}.")
        if self.fold_scheme not in ("site", "block"):
            raise SpecError(f"fold_scheme must be 'site' or 'block', got {self.fold_scheme!r}.")
        if self.folds == 1 or self.folds < 0:
            raise SpecError(f"folds must be 0 (no cross-validation) or at least 2, got {self.folds}.")
        if self.target_transform not in _TRANSFORMS:
            raise SpecError(f"target_transform must be one of {_TRANSFORMS}, got {self.target_transform!r}.")
        if not 0.0 < self.inner_fraction < 1.0:
            raise SpecError(f"inner_fraction must be in (0, 1), got {self.inner_fraction}.")

    @property
    def lgb_params(self) -> dict[str, Any]:
        return {**DEFAULT_PARAMS, "seed": self.seed, "num_threads": self.n_jobs or 1, **dict(self.params)}

    def to_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, Mapping) else list(v) if isinstance(v, tuple) else v)
                for k, v in self.__dict__.items()}


# --------------------------------------------------------------------------------------------
# tables


def read_table(table: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """A tower table as a DataFrame with ``site`` and ``date`` (path or DataFrame)."""
    if isinstance(table, pd.DataFrame):
        df = table.copy()
        if "date" in df.columns:
            df["date"] = pd.to_datetime(df["date"])
        return df
    from unique_xr.towers import read_tower_table

    return read_tower_table(table)


def _igbp(df: pd.DataFrame) -> pd.Series:
    col = next((c for c in _IGBP_COLUMNS if c in df.columns), None)
    if col is None:
        return pd.Series("unknown", index=df.index)
    from unique_xr.towers import igbp_code

    codes = {label: _igbp_or_none(igbp_code, label) for label in df[col].dropna().unique()}
    return df[col].map(codes).fillna("unknown")


def _igbp_or_none(igbp_code, label):
    try:
        return igbp_code(label)
    except (ValueError, TypeError):  # an unknown label is reported as "unknown", not fatal
        return None


@dataclass
class TrainingData:
    """Rows usable for training: features, target and keys, with what QC removed."""

    frame: pd.DataFrame  # site, date, igbp, lat, lon, target and extra columns
    features: pd.DataFrame
    y: np.ndarray
    qc: dict[str, int]


def _training_data(df: pd.DataFrame, config: TrainConfig, recipe: Recipe) -> TrainingData:
    if config.target not in df.columns:
        raise MissingVariableError(
            f"Target column {config.target!r} is not in the table; columns seen: {list(df.columns)[:25]}. "
            "Pass the observed GPP column with --target (e.g. gpp_obs)."
        )
    y_all = pd.to_numeric(df[config.target], errors="coerce").to_numpy(dtype="float64")
    finite = np.isfinite(y_all)
    if not finite.any():
        raise MissingVariableError(f"Target column {config.target!r} has no finite values.")
    lo, hi = config.gpp_range
    check_range(
        y_all, "gpp", (0.0, 20.0),
        message=(f"Target {config.target!r} has median {{median:.4g}}; daily GPP in g C m-2 d-1 has a median "
                 "of roughly 0-10. Convert it first (umol CO2 m-2 s-1 x 1.0368 = g C m-2 d-1; a monthly or "
                 "annual sum must be divided by its days)."),
    )
    feats = features_from_table(df, recipe)
    keep = finite & (y_all >= lo) & (y_all <= hi)
    qc = {"rows": len(df), "target_missing": int((~finite).sum()), "target_out_of_range": int((finite & ~keep).sum())}
    qcol = config.quality_column or next((c for c in ("gpp_qc", "NEE_VUT_REF_QC") if c in df.columns), None)
    if config.min_quality is not None:
        if qcol is None or qcol not in df.columns:
            raise MissingVariableError(
                f"min_quality={config.min_quality} needs a quality column; none of "
                f"{config.quality_column or 'gpp_qc, NEE_VUT_REF_QC'} is in the table."
            )
        good = pd.to_numeric(df[qcol], errors="coerce").to_numpy() >= config.min_quality
        qc["below_min_quality"] = int((keep & ~good).sum())
        keep &= good
    has_inputs = feats[list(recipe.required_features)].notna().all(axis=1).to_numpy()
    qc["no_reflectance"] = int((keep & ~has_inputs).sum())
    keep &= has_inputs
    qc["used"] = int(keep.sum())
    if qc["used"] < 100:
        raise SpecError(f"Only {qc['used']} usable training rows after QC ({qc}); need at least 100.")
    frame = pd.DataFrame({
        "site": df["site"].astype(str).to_numpy(),
        "date": pd.to_datetime(df["date"]).to_numpy(),
        "igbp": _igbp(df).to_numpy(),
        "lat": pd.to_numeric(df.get("lat", df.get("latitude")), errors="coerce"),
        "lon": pd.to_numeric(df.get("lon", df.get("longitude")), errors="coerce"),
        config.target: y_all,
    })
    if "gpp_pmodel" in df.columns:
        frame["gpp_pmodel"] = pd.to_numeric(df["gpp_pmodel"], errors="coerce").to_numpy()
    sel = np.flatnonzero(keep)
    return TrainingData(
        frame=frame.iloc[sel].reset_index(drop=True),
        features=feats.iloc[sel].reset_index(drop=True),
        y=y_all[sel],
        qc=qc,
    )


# --------------------------------------------------------------------------------------------
# fitting


def _scale(column: Callable[[str], np.ndarray], n: int, transform: str) -> np.ndarray:
    """The radiation the trees' output is multiplied by (W m-2), per row; ``column(name)`` gives a feature."""
    if transform == "none":
        return np.ones(n)
    toa = column("rad_toa")
    if transform == "per_toa_radiation":
        return np.maximum(toa, RAD_FLOOR)
    sw = column("shortwave_radiation")
    return np.maximum(np.where(np.isfinite(sw), sw, CLEAR_FRACTION * toa), RAD_FLOOR)


def gpp_features(transform: str, required: tuple[str, ...]) -> tuple[str, ...]:
    """The features :func:`to_gpp` reads for ``transform`` and ``required`` (no repeats)."""
    scale = {"none": (), "per_toa_radiation": ("rad_toa",)}.get(transform, ("shortwave_radiation", "rad_toa"))
    return tuple(dict.fromkeys((*scale, *required)))


def to_gpp(raw: np.ndarray, column: Callable[[str], np.ndarray], transform: str,
           required: tuple[str, ...]) -> np.ndarray:
    """GPP (g C m-2 d-1) from the trees' raw output: times the radiation scale, NaN where a required
    feature is missing. Shared by table prediction and the blockwise cube kernel, so both give the
    same numbers for the same feature values."""
    out = raw * _scale(column, len(raw), transform)
    for name in required:
        out[np.isnan(column(name))] = np.nan
    return out


def _columns(frame: pd.DataFrame) -> Callable[[str], np.ndarray]:
    return lambda name: frame[name].to_numpy(dtype="float64")


def _fit(X: pd.DataFrame, y: np.ndarray, sites: np.ndarray, config: TrainConfig, *, seed: int):
    """Early stopping on a site-grouped inner split, then a refit on all rows with that many trees."""
    lgb = import_optional("lightgbm", purpose="training GPP models")
    params = {**config.lgb_params, "seed": seed}
    target = y / _scale(_columns(X), len(X), config.target_transform)
    best = config.num_boost_round
    if len(np.unique(sites)) >= 3 and config.early_stopping_rounds > 0:
        inner_tr, inner_va = cv.inner_split(sites, fraction=config.inner_fraction, seed=seed)
        dtrain = lgb.Dataset(X.iloc[inner_tr], target[inner_tr], free_raw_data=False)
        dvalid = lgb.Dataset(X.iloc[inner_va], target[inner_va], reference=dtrain)
        booster = lgb.train(params, dtrain, num_boost_round=config.num_boost_round, valid_sets=[dvalid],
                            callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)])
        best = max(int(booster.best_iteration or config.num_boost_round), 10)
    booster = lgb.train(params, lgb.Dataset(X, target), num_boost_round=best)
    return booster, best


def _predict(booster, X: pd.DataFrame, transform: str, required: tuple[str, ...]) -> np.ndarray:
    raw = booster.predict(X, num_threads=booster.params.get("num_threads", 0))
    return to_gpp(raw, _columns(X), transform, required)


def _baseline_frame(data: TrainingData) -> pd.DataFrame:
    f = data.features
    frame = pd.DataFrame({
        "site": data.frame["site"], "igbp": data.frame["igbp"],
        "ndvi": f["ndvi"], "evi": f["evi"], "nirv": f["nirv"], "rad_toa": f["rad_toa"],
        "sw_in": f["shortwave_radiation"], "ta": f["air_temperature"], "vpd": f["vpd"],
    })
    if "gpp_pmodel" in data.frame:
        frame["gpp_pmodel"] = data.frame["gpp_pmodel"]
    return frame


def _baselines(frame: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {"linear_vi": bl.LinearVI, "lue_mod17": bl.LightUseEfficiency}
    if "gpp_pmodel" in frame and frame["gpp_pmodel"].notna().any():
        out["pmodel"] = bl.PModelColumn
    return out


def _folds(data: TrainingData, config: TrainConfig) -> cv.Folds:
    sites = data.frame["site"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "more folds than sites": recorded in folds.scheme
        if config.fold_scheme == "block":
            return cv.spatial_block_folds(sites, data.frame["lat"], data.frame["lon"], n_folds=config.folds,
                                          block_deg=config.block_deg, seed=config.seed)
        return cv.site_folds(sites, n_folds=config.folds, seed=config.seed)


def cross_validate(data: TrainingData, config: TrainConfig, recipe: Recipe, *, progress=None):
    """Out-of-fold predictions of LightGBM and the baselines, and the folds used."""
    folds = _folds(data, config)
    sites = data.frame["site"].to_numpy()
    cv.check_no_leakage(folds, sites, require_cover=True)
    oof = data.frame.copy()
    pred = np.full(len(oof), np.nan)
    fold = np.full(len(oof), -1)
    X = data.features[list(recipe.features)]
    for k, (tr, te) in enumerate(folds):
        booster, _ = _fit(X.iloc[tr], data.y[tr], sites[tr], config, seed=config.seed + k)
        pred[te] = _predict(booster, X.iloc[te], config.target_transform, recipe.required_features)
        fold[te] = k
        if progress is not None:
            progress(k + 1, len(folds))
    oof["lightgbm"] = pred
    if config.baselines:
        bframe = _baseline_frame(data)
        for name, factory in _baselines(bframe).items():
            oof[name] = bl.fit_predict_in_folds(factory, bframe, data.y, folds)
    oof["fold"] = fold
    return oof, folds


# --------------------------------------------------------------------------------------------
# the model


@dataclass
class GppModel:
    """A trained GPP model: the LightGBM booster and its model card.

    Use :func:`load_model` to read one saved by ``unique-xr train``.
    """

    booster: Any
    card: ModelCard

    @property
    def recipe(self) -> Recipe:
        return Recipe.from_dict(self.card.recipe)

    @property
    def features(self) -> list[str]:
        return self.card.feature_names

    @cached_property
    def required(self) -> tuple[str, ...]:
        """Features without which a prediction is NaN: the recipe's reflectance, and every feature the
        trees cannot treat as missing (see :func:`nan_unsafe_features`)."""
        return tuple(dict.fromkeys((*self.recipe.required_features, *nan_unsafe_features(self.booster))))

    def check_allow_missing(self, allow_missing: tuple[str, ...]) -> None:
        """Raise when an input declared absent would empty a feature the trees cannot treat as missing."""
        if not allow_missing:
            return
        emptied = features_emptied_by(self.recipe, allow_missing)
        blocked = [f for f in self.required if f in emptied]
        if blocked:
            raise SpecError(
                f"allow_missing={allow_missing!r} leaves the features {blocked} without values, but this model "
                "never saw them missing in training: LightGBM would read NaN there as 0 (a 0 K temperature, a zero "
                "reflectance), not as missing, and every prediction would be NaN by the library's rule. Provide "
                "the input, or use a model trained without it (e.g. examples/train_sample_models.py)."
            )

    def features_from_table(self, table, *, allow_missing: tuple[str, ...] = ()) -> pd.DataFrame:
        """The model's features for every row of a tower table (path or DataFrame)."""
        return features_from_table(read_table(table), self.recipe, allow_missing=allow_missing)

    def predict_features(self, features: pd.DataFrame) -> np.ndarray:
        """GPP (g C m-2 d-1) from a feature frame; NaN where the surface reflectance is missing."""
        absent = [f for f in self.features if f not in features.columns]
        if absent:
            raise MissingVariableError(
                f"Feature frame lacks {absent}; the model was trained on {self.features}."
            )
        return _predict(self.booster, features[self.features], self.card.target_transform, self.required)

    def predict(self, table, *, allow_missing: tuple[str, ...] = ()) -> pd.DataFrame:
        """``site``, ``date`` and ``gpp`` (g C m-2 d-1) for every row of ``table``, in row order."""
        df = read_table(table)
        self.check_allow_missing(tuple(allow_missing))
        feats = features_from_table(df, self.recipe, allow_missing=allow_missing)
        out = pd.DataFrame({"site": df["site"].to_numpy(), "date": pd.to_datetime(df["date"]).dt.strftime("%Y-%m-%d")})
        out["gpp"] = self.predict_features(feats).astype("float32")
        return out

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``model.txt``, then ``model_card.json`` with its SHA-256 (the card last; the one model-folder
        format, :func:`unique_xr._files.write_model_folder`)."""
        card = {k: v for k, v in self.card.to_dict().items() if k != SHA256_KEY}
        path, written = write_model_folder(directory, card=card, card_name=CARD_FILE,
                                           files={MODEL_FILE: self.booster.model_to_string().encode()})
        self.card.sha256 = written[SHA256_KEY]
        return path


def nan_unsafe_features(booster) -> tuple[str, ...]:
    """Features the trees split on that had no missing value in training.

    LightGBM sends NaN down a learned branch only for features that were missing in training
    (``missing_type`` NaN); elsewhere it reads NaN as 0.0, which for a reflectance or a temperature is a
    wrong value, not a missing one. Predictions are NaN where any of these features is missing.
    """
    names = booster.feature_name()
    unsafe: set[str] = set()
    stack = [tree["tree_structure"] for tree in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            if node.get("missing_type") != "NaN":
                unsafe.add(names[node["split_feature"]])
            stack += [node["left_child"], node["right_child"]]
    return tuple(n for n in names if n in unsafe)


def features_emptied_by(recipe: Recipe, absent: tuple[str, ...]) -> set[str]:
    """Features of ``recipe`` that have no value when the canonical inputs ``absent`` are missing.

    Found by deriving the features of a short plausible series with those inputs left out, so it
    follows :func:`~unique_xr.models.features.derive_features` exactly.
    """
    import xarray as xr

    from unique_xr.models.features import INPUTS, derive_features, resolve_inputs

    typical = {"nbar_red": 0.05, "nbar_nir": 0.3, "nbar_blue": 0.03, "nbar_green": 0.06, "nbar_nir2": 0.28,
               "nbar_swir1": 0.2, "nbar_swir2": 0.1, "lst_day_terra": 295.0, "lst_day_aqua": 296.0,
               "sr_blue": 0.03, "sr_green": 0.06, "sr_red": 0.05, "sr_nir": 0.3, "sr_swir1": 0.2, "sr_swir2": 0.1,
               "landsat_st": 295.0, "air_temperature": 15.0, "shortwave_radiation": 200.0, "vpd": 8.0, "lat": 45.0}
    time = pd.date_range("2020-06-01", periods=5)
    ds = xr.Dataset({INPUTS[n].aliases[0].name: ("time", np.full(len(time), typical[n]))
                     for n in recipe.inputs if n not in absent}, coords={"time": time})
    feats = derive_features(resolve_inputs(ds, recipe, allow_missing=absent, check_units=False), recipe)
    return {f for f in recipe.features if bool(feats[f].isnull().all())}


#: How a complete LightGBM model text ends (after its parameters block).
_MODEL_TEXT_END = "end of parameters"


def _checked_model_text(directory: Path, card: ModelCard) -> str:
    """The text of ``model.txt``, checked before LightGBM parses it.

    LightGBM's parser runs in native code and a truncated file can crash the process instead of
    raising, so the text must match the SHA-256 in the card (:func:`unique_xr._files.check_model_files`).
    Cards written before checksums were recorded get a structural check instead: the text must run to
    LightGBM's closing parameters block.
    """
    model_path = directory / MODEL_FILE
    blob = check_model_files(directory, {SHA256_KEY: card.sha256}, [MODEL_FILE], card_name=CARD_FILE,
                             error=ModelFolderError, required=False)[MODEL_FILE]
    try:
        text = blob.decode()
    except UnicodeDecodeError as err:
        raise ModelFolderError(f"{model_path} is not LightGBM model text ({err}): the file is damaged.") from err
    if not text.startswith("tree") or _MODEL_TEXT_END not in text:
        raise ModelFolderError(
            f"{model_path} is not a complete LightGBM model ({len(blob)} bytes; it should start with 'tree' and "
            f"end with the '{_MODEL_TEXT_END}' block): the file is truncated or damaged. Retrain the model or "
            "restore the folder."
        )
    return text


def load_model(directory: str | os.PathLike) -> GppModel:
    """Load a model directory written by ``unique-xr train`` / :meth:`GppModel.save`."""
    lgb = import_optional("lightgbm", purpose="loading GPP models")
    card = ModelCard.load(directory)
    model_path = Path(directory) / MODEL_FILE
    text = _checked_model_text(Path(directory), card)
    try:
        booster = lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as err:
        raise ModelFolderError(f"LightGBM cannot read {model_path} ({err}): the file is damaged. Retrain the model "
                               "or restore the folder.") from err
    if list(booster.feature_name()) != card.feature_names:
        raise SpecError(
            f"{model_path} and its model card disagree on the features ({booster.feature_name()} vs "
            f"{card.feature_names}); the directory was edited by hand or is corrupt. Retrain it."
        )
    return GppModel(booster=booster, card=card)


# --------------------------------------------------------------------------------------------
# training


@dataclass
class TrainResult:
    """What :func:`train` returns: the final model, the out-of-fold predictions and the scores."""

    model: GppModel
    oof: pd.DataFrame | None
    scores: pd.DataFrame | None
    folds: cv.Folds | None
    seconds: float

    def save(self, directory: str | os.PathLike) -> Path:
        """Model, card, ``cv_scores.csv`` and ``cv_predictions.csv.gz`` into ``directory``."""
        path = Path(directory)
        written = {"cv_scores.csv": self.scores, "cv_predictions.csv.gz": self.oof}
        for name in written:  # first: files of an earlier training never sit beside the new model
            (path / name).unlink(missing_ok=True)
        self.model.save(path)
        for name, frame in written.items():
            if frame is not None:  # None: trained without cross-validation (folds=0)
                if "date" in frame.columns:
                    frame = frame.assign(date=pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d"))
                write_csv(frame, path / name, float_format="%.4f")
        return path


def _model_columns(oof: pd.DataFrame) -> list[str]:
    return [c for c in ("lightgbm", "linear_vi", "lue_mod17", "pmodel") if c in oof.columns]


def _score(oof: pd.DataFrame, config: TrainConfig) -> pd.DataFrame:
    """Scores at every time scale (``gpp_m``) or per observation day only (``gpp_l``: Landsat days are
    too sparse for 8-day or monthly means; two scenes on one site-day are averaged)."""
    models = _model_columns(oof)
    if config.kind == "gpp_l":
        numeric = [config.target, *models]
        oof = oof.groupby(["site", "date"], as_index=False).agg({**{c: "mean" for c in numeric}, "igbp": "first"})
        return scoring.score_table(oof, obs=config.target, models=models, by=("overall", "igbp"), scales=("D",))
    return scoring.score_table(oof, obs=config.target, models=models, by=("overall", "igbp"))


def _summary(scores: pd.DataFrame) -> dict[str, Any]:
    daily = scores[(scores["scale"] == "D") & (scores["group_by"] == "overall")]
    return {row["model"]: {k: _round(row[k]) for k in scoring.METRICS} for _, row in daily.iterrows()}


def _round(v):
    return round(float(v), 4) if isinstance(v, (float, np.floating)) else int(v)


def _inputs_card(recipe: Recipe, df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for name in recipe.inputs:
        spec = INPUTS[name]
        out.append({"name": name, "units": spec.units, "description": spec.description,
                    "accepted_as": [{"column": a.name, "units": a.units} for a in spec.aliases],
                    "used_in_training": [a.name for a in spec.aliases if a.name in df.columns]})
    return out


def train(table, config: TrainConfig | None = None, *, progress=None) -> TrainResult:
    """Train a GPP model on a tower table, with site-grouped cross-validation and baselines.

    Parameters
    ----------
    table
        Path to a tower table (csv, csv.gz, parquet) or a DataFrame with ``site``, ``date``, the
        raw inputs of the recipe and the target column.
    config
        :class:`TrainConfig`; defaults to GPP_M, target ``gpp_obs``, 20 site-grouped folds.
    progress
        Optional ``callable(done, total)`` called after each outer fold.
    """
    config = config or TrainConfig()
    t0 = time.perf_counter()
    recipe = RECIPES[config.kind]
    df = read_table(table)
    data = _training_data(df, config, recipe)
    X = data.features[list(recipe.features)]
    oof = scores = folds = None
    cv_card: dict[str, Any] = {}
    if config.folds:
        oof, folds = cross_validate(data, config, recipe, progress=progress)
        scores = _score(oof, config)
        cv_card = {**folds.to_dict(), "summary_daily": _summary(scores),
                   "note": "same rows for every model (rows where all models have a prediction)"}
    booster, best = _fit(X, data.y, data.frame["site"].to_numpy(), config, seed=config.seed)
    sites = data.frame.groupby("site").agg(igbp=("igbp", "first"), rows=("site", "size")).reset_index()
    gain = booster.feature_importance(importance_type="gain")
    card = ModelCard(
        kind=config.kind,
        target=config.target,
        target_transform=config.target_transform,
        recipe=recipe.to_dict(),
        features=[{"name": f, "units": feature_units(f)} for f in recipe.features],
        inputs=_inputs_card(recipe, df),
        training={
            "table": df.attrs.get("source", "DataFrame"),
            "sites": sites.to_dict(orient="records"),
            "n_sites": len(sites),
            "period": [str(data.frame["date"].min().date()), str(data.frame["date"].max().date())],
            "qc": data.qc,
            "config": config.to_dict(),
        },
        params={**config.lgb_params, "num_boost_round": config.num_boost_round,
                "early_stopping_rounds": config.early_stopping_rounds, "inner_fraction": config.inner_fraction},
        best_iteration=best,
        cv=cv_card,
        feature_importance={f: round(float(g), 2) for f, g in zip(recipe.features, gain, strict=True)},
        versions=library_versions(),
    )
    return TrainResult(model=GppModel(booster=booster, card=card), oof=oof, scores=scores, folds=folds,
                       seconds=round(time.perf_counter() - t0, 1))
