"""The CNN against three classic models, in the same site-grouped folds, at 0-50 % missing inputs.

Every model is trained once per fold on the training site-years as they are (with their own
gaps) and tested on the held-out sites with a share of the observed input cells hidden at
random on top of the data's own gaps. The hidden cells are drawn once per fold and share
(seeded by ``(seed, fold, share)``) and are the *same* for every model, so the scores at a
given share compare like with like.

Models (:data:`MODELS`)
    ``cnn``
        The gap-tolerant CNN (:func:`~unique_xr.models.cnn.model.fit_cnn`): reads the mask of
        observed cells, nothing is filled.
    ``rf``
        Random forest on the flattened map (:meth:`~unique_xr.models.cnn.featuremap.FeatureMaps.flat`:
        every cell, NaN kept, plus the one-hot forest type); scikit-learn's trees route missing
        values natively (scikit-learn >= 1.4).
    ``svr``
        Support-vector regression on the same features. It cannot take NaN: a missing cell gets
        the mean of that cell over the training fold (its gap handling), then features and target
        are standardised.
    ``lgbm``
        LightGBM on the same features, missing values routed natively.

The classic models fit one regressor per target (annual GPP, annual NEE). Their settings
(:func:`classic_model`) were checked to be reasonable on the MetaFlux forest site-years in
10-fold site cross-validation; they are not tuned per fold.

Skill is pooled over the out-of-fold predictions (``n, r, rmse, bias`` from
:func:`unique_xr.models.scores.metrics`, g C m-2 yr-1), per model, share and target, with the
RMSE relative to the same model's at 0 % hidden (``rmse_rel``): the CNN should lose least.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unique_xr._files import save_figure, write_atomic, write_csv
from unique_xr._optional import import_optional
from unique_xr.errors import SpecError
from unique_xr.models.cnn.featuremap import FeatureMaps
from unique_xr.models.cnn.model import TARGETS, CnnConfig, fit_cnn
from unique_xr.models.cnn.occlusion import hide_at_random
from unique_xr.models.cv import Folds, check_no_leakage, site_folds
from unique_xr.models.scores import metrics
from unique_xr.models.cnn.schema import ANNUAL_UNITS

__all__ = [
    "CLASSIC_MODELS",
    "LABELS",
    "MODELS",
    "ClassicModel",
    "Comparison",
    "classic_model",
    "compare_models",
    "evaluation_mask",
    "fit_classic",
    "missingness_figure",
]

#: The three classic models compared with the CNN.
CLASSIC_MODELS: tuple[str, ...] = ("rf", "svr", "lgbm")
#: The default comparison, the CNN first.
MODELS: tuple[str, ...] = ("cnn", *CLASSIC_MODELS)
#: An ablation :func:`compare_models` also knows: the same CNN trained without occlusions.
ABLATIONS: tuple[str, ...] = ("cnn_plain",)
#: Names for tables and figures.
LABELS: dict[str, str] = {"cnn": "CNN (gap-tolerant)", "rf": "random forest", "svr": "SVR (mean-imputed)",
                          "lgbm": "LightGBM", "cnn_plain": "CNN without occlusion"}
#: Axis label of annual carbon fluxes.
CARBON_UNITS = "g C m-2 yr-1"
COLOURS: dict[str, str] = {"cnn": "#1b6ca8", "rf": "#2e8b57", "svr": "#9e9e9e", "lgbm": "#e0a100",
                           "cnn_plain": "#7fb3d5"}


# --------------------------------------------------------------------------------------------
# classic models
# --------------------------------------------------------------------------------------------


def classic_model(name: str, *, seed: int = 0, threads: int | None = None) -> Any:
    """An unfitted scikit-learn-style regressor for one target.

    Parameters
    ----------
    name
        ``"rf"`` (``RandomForestRegressor``: 300 trees, ``min_samples_leaf=3``; NaN routed natively),
        ``"svr"`` (mean imputation from the training fold, standardised features, RBF ``SVR(C=1)``
        on a standardised target: SVR cannot take NaN, so imputation is its gap handling) or
        ``"lgbm"`` (``LGBMRegressor``: 300 trees, learning rate 0.03, 15 leaves, bagging 0.8,
        half the features per tree; NaN routed natively).
    seed
        ``random_state`` of the forest and the boosting.
    threads
        ``n_jobs`` (None: the library's default).

    Examples
    --------
    >>> from unique_xr.models.cnn.compare import classic_model
    >>> type(classic_model("rf")).__name__
    'RandomForestRegressor'
    """
    if name == "rf":
        ensemble = import_optional("sklearn.ensemble", purpose="the random-forest baseline")
        return ensemble.RandomForestRegressor(n_estimators=300, min_samples_leaf=3, random_state=seed, n_jobs=threads)
    if name == "svr":
        import_optional("sklearn", purpose="the SVR baseline")
        from sklearn.compose import TransformedTargetRegressor
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVR

        return TransformedTargetRegressor(
            regressor=make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), SVR(C=1.0)),
            transformer=StandardScaler(),
        )
    if name == "lgbm":
        lightgbm = import_optional("lightgbm", purpose="the LightGBM baseline")
        return lightgbm.LGBMRegressor(n_estimators=300, learning_rate=0.03, num_leaves=15, min_child_samples=10,
                                      subsample=0.8, subsample_freq=1, colsample_bytree=0.5, verbose=-1,
                                      random_state=seed, n_jobs=threads)
    raise SpecError(f"Unknown classic model {name!r}; choose from {list(CLASSIC_MODELS)}.")


@dataclass
class ClassicModel:
    """One fitted regressor per target (annual GPP, annual NEE) on flattened feature maps."""

    name: str
    regressors: list[Any]

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """``(n, 2)`` annual ``(gpp, nee)`` from flattened features (:meth:`FeatureMaps.flat`, NaN kept)."""
        return np.stack([np.asarray(r.predict(features), dtype=np.float64) for r in self.regressors], axis=1)

    def predict(self, maps: FeatureMaps, observed: np.ndarray | None = None) -> np.ndarray:
        """``(n, 2)`` annual ``(gpp, nee)``; cells outside ``observed`` are set to NaN first."""
        return self.predict_features(flat_features(maps, observed))


def flat_features(maps: FeatureMaps, observed: np.ndarray | None = None) -> np.ndarray:
    """:meth:`FeatureMaps.flat` with the cells outside ``observed`` set to NaN (all kept when None)."""
    if observed is not None:
        maps = maps.with_values(np.where(np.asarray(observed, bool), maps.values, np.nan))
    return maps.flat()[0]


def fit_classic(name: str, maps: FeatureMaps, targets: np.ndarray, *, seed: int = 0,
                threads: int | None = None) -> ClassicModel:
    """Fit :func:`classic_model` ``name`` once per target on flattened maps (rows with a NaN target left out)."""
    features = flat_features(maps)
    regressors = []
    for j in range(targets.shape[1]):
        ok = np.isfinite(targets[:, j])
        if ok.sum() < 3:
            raise SpecError(f"Only {int(ok.sum())} training maps have a finite {TARGETS[j]}; {name} needs at least 3.")
        regressors.append(classic_model(name, seed=seed, threads=threads).fit(features[ok], targets[ok, j]))
    return ClassicModel(name, regressors)


# --------------------------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------------------------


def evaluation_mask(observed: np.ndarray, share: float, *, seed: int, fold: int) -> np.ndarray:
    """The observed cells left after hiding ``share`` of them in fold ``fold`` (the same for every model).

    Seeded by ``(seed, fold, share)``, so a comparison can be repeated cell for cell.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.models.cnn.compare import evaluation_mask
    >>> obs = np.ones((4, 12, 6), bool)
    >>> a = evaluation_mask(obs, 0.3, seed=0, fold=1)
    >>> int((~a).sum()), bool((a == evaluation_mask(obs, 0.3, seed=0, fold=1)).all())
    (86, True)
    """
    rng = np.random.default_rng([int(seed), int(fold), round(share * 10_000)])
    return hide_at_random(observed, share, rng)


@dataclass
class Comparison:
    """Out-of-fold predictions and skill of :func:`compare_models`.

    Attributes
    ----------
    predictions : pandas.DataFrame
        One row per model, share, site-year and target: ``model, missing, fold, site, year, igbp,
        target, obs, pred`` (annual sums, g C m-2 yr-1, NEE < 0 is uptake) and ``hidden``, the
        input cells of that map hidden on top of its own gaps.
    skill : pandas.DataFrame
        One row per model, share and target: ``model, missing, target, n, r, rmse, bias`` and
        ``rmse_rel`` (RMSE over the same model's RMSE at 0 % hidden; NaN when 0 was not run).
    folds : dict
        The split (:meth:`unique_xr.models.cv.Folds.to_dict`).
    meta : dict
        ``natural_missing`` (share of input cells missing in the data), ``missing_total`` (share
        missing in the test maps at each share hidden), ``site_years``, ``sites``, ``config``
        (the CNN's), ``seed``, ``seconds`` per model (fit and predict, all folds) and ``units``.
    models : dict
        Fold -> model name -> fitted model, when ``keep_models=True`` (else empty).
    """

    predictions: pd.DataFrame
    skill: pd.DataFrame
    folds: dict[str, Any]
    meta: dict[str, Any]
    models: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    def to_files(self, out_dir: str | os.PathLike, *, predictions: bool = True) -> Path:
        """Write ``skill.csv``, ``predictions.csv`` (unless ``predictions=False``) and ``summary.json``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(self.skill, out / "skill.csv", float_format="%.4f")
        if predictions:
            write_csv(self.predictions, out / "predictions.csv", float_format="%.2f")
        summary = {"meta": self.meta, "folds": self.folds,
                   "skill": json.loads(self.skill.to_json(orient="records", double_precision=4))}
        write_atomic(out / "summary.json", json.dumps(summary, indent=1, default=_json_default).encode())
        return out

    def table(self, missing: float | Sequence[float] | None = None) -> str:
        """The skill as a markdown table: a row per share and model, r / RMSE / bias / RMSE ratio per target.

        ``missing`` picks one share or several (default: every share run).
        """
        return skill_table(self.skill, missing)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None or not np.isfinite(value) else format(value, spec)


def skill_table(skill: pd.DataFrame, missing: float | Sequence[float] | None = None) -> str:
    """Markdown table of a skill frame (see :meth:`Comparison.table`); the lowest RMSE per share in bold."""
    shares = sorted(skill["missing"].unique()) if missing is None else \
        [float(missing)] if np.ndim(missing) == 0 else [float(s) for s in missing]
    absent = [s for s in shares if not np.isclose(skill["missing"], s).any()]
    if absent:
        raise SpecError(f"No skill at missing share(s) {absent}; the comparison ran "
                        f"{sorted(skill['missing'].unique())}.")
    targets = [t for t in TARGETS if t in set(skill["target"])]
    header = ["hidden", "model"]
    for t in targets:
        header += [f"{t.upper()} r", f"{t.upper()} RMSE", f"{t.upper()} bias", f"{t.upper()} RMSE ×"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---", ":---"] + ["---:"] * (len(header) - 2)) + "|"]
    models = list(dict.fromkeys(skill["model"]))
    for share in shares:
        at = skill[np.isclose(skill["missing"], share)]
        best = {t: at.loc[at["target"] == t, "rmse"].min() for t in targets}
        for name in models:
            cells = [f"{100 * share:.0f} %", LABELS.get(name, name)]
            for t in targets:
                row = at[(at["model"] == name) & (at["target"] == t)]
                if row.empty:
                    cells += ["–"] * 4
                    continue
                r = row.iloc[0]
                rmse = _fmt(r["rmse"], ".0f")
                cells += [_fmt(r["r"], ".2f"), f"**{rmse}**" if r["rmse"] == best[t] else rmse,
                          _fmt(r["bias"], "+.0f"), _fmt(r["rmse_rel"], ".2f")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_models(
    maps: FeatureMaps,
    targets: np.ndarray,
    *,
    folds: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    n_folds: int = 10,
    missing: Sequence[float] = (0.0, 0.1, 0.3, 0.5),
    models: Sequence[str] = MODELS,
    config: CnnConfig | None = None,
    seed: int = 0,
    threads: int | None = None,
    progress: bool = False,
    keep_models: bool = False,
) -> Comparison:
    """Cross-validate the CNN and the classic models in the same site-grouped folds and hidden cells.

    Parameters
    ----------
    maps
        Feature maps of the site-years (``keys`` with ``site, year, igbp``), e.g. from
        :func:`unique_xr.models.cnn.run.load_training_set`.
    targets
        ``(n, 2)`` annual GPP and NEE (g C m-2 yr-1; NEE < 0 is uptake).
    folds
        ``(train_idx, test_idx)`` pairs; default :func:`~unique_xr.models.cv.site_folds` of the
        maps' sites with ``n_folds`` and ``seed``. Checked to be site-disjoint either way.
    n_folds
        Folds of the default split.
    missing
        Shares of the test maps' *observed* cells to hide at random, on top of their own gaps.
    models
        Any of :data:`MODELS` and :data:`ABLATIONS` (``cnn_plain``: the CNN of ``config`` trained
        without occlusions, to show what occlusion training does).
    config
        The CNN's training configuration (:class:`CnnConfig` defaults when None). The CNN uses
        ``config.seed``; ``seed`` seeds the folds, the hidden cells and the classic models.
    threads
        ``n_jobs`` of the classic models, and torch threads when ``config.threads`` is None.
    progress
        Print one line per fold.
    keep_models
        Keep every fold's fitted models in :attr:`Comparison.models` (for inspection and tests).

    Returns
    -------
    Comparison

    Raises
    ------
    SpecError
        Unknown model names, shares outside [0, 1), targets of the wrong shape, or folds that
        mix sites (:class:`~unique_xr.errors.FoldLeakageError`).
    """
    models = tuple(models)
    unknown = [m for m in models if m not in MODELS + ABLATIONS]
    if unknown or not models:
        raise SpecError(f"Unknown model(s) {unknown or list(models)}; choose from {list(MODELS + ABLATIONS)}.")
    shares = tuple(float(s) for s in missing)
    bad = [s for s in shares if not 0.0 <= s < 1.0]
    if bad or not shares:
        raise SpecError(f"Missing shares must be within [0, 1) (0.3 hides 30 % of the observed cells); "
                        f"got {list(missing)}.")
    targets = np.asarray(targets, dtype=np.float64)
    if targets.shape != (len(maps), 2):
        raise SpecError(f"targets must have shape ({len(maps)}, 2) (annual gpp, nee); got {targets.shape}.")
    for col in ("site", "year", "igbp"):
        if col not in maps.keys.columns:
            raise SpecError(f"maps.keys needs a {col!r} column (it has {list(maps.keys.columns)}); build the maps "
                            "with feature_maps_from_table.")
    sites = maps.keys["site"].astype(str).to_numpy()
    if folds is None:
        folds = site_folds(sites, n_folds, seed=seed)
    elif not isinstance(folds, Folds):
        folds = list(folds)  # a generator would be spent by the leakage check
    check_no_leakage(folds, sites)
    config = config or CnnConfig()
    if threads and config.threads is None:
        config = replace(config, threads=threads)

    seconds = dict.fromkeys(models, 0.0)
    hidden_cells = dict.fromkeys(shares, 0)
    test_cells = 0
    natural_test_missing = 0
    frames: list[pd.DataFrame] = []
    kept: dict[int, dict[str, Any]] = {}
    for k, (train, test) in enumerate(folds):
        started = time.perf_counter()
        train, test = np.asarray(train), np.asarray(test)
        train_maps, test_maps = maps.subset(train), maps.subset(test)
        fitted: dict[str, Any] = {}
        for name in models:
            t0 = time.perf_counter()
            if name == "cnn":
                fitted[name] = fit_cnn(train_maps, targets[train], config)
            elif name == "cnn_plain":
                fitted[name] = fit_cnn(train_maps, targets[train], replace(config, occlusion=None))
            else:
                fitted[name] = fit_classic(name, train_maps, targets[train], seed=seed, threads=threads)
            seconds[name] += time.perf_counter() - t0
        observed = test_maps.observed
        test_cells += observed.size
        natural_test_missing += int((~observed).sum())
        for share in shares:
            mask = evaluation_mask(observed, share, seed=seed, fold=k)
            hidden = (observed & ~mask).sum(axis=(1, 2))
            hidden_cells[share] += int(hidden.sum())
            features = flat_features(test_maps, mask)
            for name in models:
                t0 = time.perf_counter()
                model = fitted[name]
                pred = model.predict(test_maps, mask) if name.startswith("cnn") else model.predict_features(features)
                seconds[name] += time.perf_counter() - t0
                frames.append(_tidy(name, share, k, test_maps, targets[test], pred, hidden))
        if keep_models:
            kept[k] = fitted
        if progress:
            print(f"fold {k + 1}/{len(folds)}: {len(test)} test site-years on {len(np.unique(sites[test]))} sites, "
                  f"{', '.join(models)} in {time.perf_counter() - started:.1f} s", flush=True)

    predictions = pd.concat(frames, ignore_index=True)
    skill = _skill(predictions, models, shares)
    fold_info = folds.to_dict() if isinstance(folds, Folds) else {"scheme": "custom", "n_folds": len(folds)}
    observed_cells = test_cells - natural_test_missing
    meta = {
        "natural_missing": round(maps.missing_fraction, 4),
        "missing_total": {str(s): round((natural_test_missing + hidden_cells[s]) / test_cells, 4)
                          if test_cells else None for s in shares},
        "hidden_share_realised": {str(s): round(hidden_cells[s] / observed_cells, 4) if observed_cells else None
                                  for s in shares},
        "site_years": len(maps),
        "sites": len(np.unique(sites)),
        "site_years_by_type": {str(k): int(v) for k, v in maps.keys["igbp"].value_counts().items()},
        "variables": list(maps.spec.variables),
        "time_step": maps.spec.time_step,
        "models": list(models),
        "config": config.to_dict() if any(m.startswith("cnn") for m in models) else None,
        "seed": int(seed),
        "seconds": {m: round(s, 1) for m, s in seconds.items()},
        "units": ANNUAL_UNITS,
        "sign_convention": "NEE < 0 is uptake by the ecosystem",
    }
    return Comparison(predictions, skill, fold_info, meta, kept)


def _tidy(model: str, share: float, fold: int, maps: FeatureMaps, obs: np.ndarray, pred: np.ndarray,
          hidden: np.ndarray) -> pd.DataFrame:
    n = len(maps)
    keys = maps.keys
    return pd.DataFrame({
        "model": model, "missing": share, "fold": fold,
        "site": np.tile(keys["site"].to_numpy(), 2), "year": np.tile(keys["year"].to_numpy(), 2),
        "igbp": np.tile(keys["igbp"].to_numpy(), 2), "target": np.repeat(TARGETS, n),
        "obs": obs.T.reshape(-1), "pred": pred.T.reshape(-1), "hidden": np.tile(hidden, 2),
    })


def _skill(predictions: pd.DataFrame, models: Sequence[str], shares: Sequence[float]) -> pd.DataFrame:
    rows = []
    for (name, share, target), group in predictions.groupby(["model", "missing", "target"], sort=False):
        m = metrics(group["obs"].to_numpy(), group["pred"].to_numpy())
        rows.append({"model": name, "missing": share, "target": target,
                     **{k: m[k] for k in ("n", "r", "rmse", "bias")}})
    skill = pd.DataFrame(rows)
    base = skill[skill["missing"] == 0.0].set_index(["model", "target"])["rmse"]
    index = pd.MultiIndex.from_frame(skill[["model", "target"]])
    skill["rmse_rel"] = skill["rmse"].to_numpy() / base.reindex(index).to_numpy()
    order = {m: i for i, m in enumerate(models)}
    skill = skill.iloc[np.lexsort((skill["model"].map(order), skill["target"].map(TARGETS.index), skill["missing"]))]
    return skill.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# figure
# --------------------------------------------------------------------------------------------


def missingness_figure(skill: pd.DataFrame, path: str | os.PathLike, *, natural_missing: float | None = None,
                       dpi: int = 110) -> Path:
    """RMSE, RMSE relative to 0 % hidden, and r against the share of inputs hidden.

    One line per model, one column per target. ``natural_missing`` (share of cells missing in the
    data) is noted in the axis label when given.
    """
    mpl = import_optional("matplotlib", purpose="drawing the skill-vs-missingness figure")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    targets = [t for t in TARGETS if t in set(skill["target"])]
    rows = [("rmse", f"RMSE ({CARBON_UNITS})"), ("rmse_rel", "RMSE / RMSE at 0 % hidden"), ("r", "r")]
    fig, axes = plt.subplots(len(rows), len(targets), figsize=(4.2 * len(targets), 7.6), squeeze=False,
                             sharex=True, layout="constrained")
    xlabel = "input cells hidden (% of observed)"
    if natural_missing is not None:
        xlabel += f"\non top of {100 * natural_missing:.0f} % missing in the data"
    for j, target in enumerate(targets):
        for name in dict.fromkeys(skill["model"]):
            line = skill[(skill["model"] == name) & (skill["target"] == target)].sort_values("missing")
            style = {"color": COLOURS.get(name), "marker": "o", "lw": 2.2 if name == "cnn" else 1.4,
                     "label": LABELS.get(name, name)}
            for i, (column, _) in enumerate(rows):
                axes[i, j].plot(100 * line["missing"], line[column], **style)
        axes[0, j].set_title(f"annual {target.upper()}")
        for i, (_, label) in enumerate(rows):
            axes[i, j].set_ylabel(label)
            axes[i, j].grid(alpha=0.3)
        axes[-1, j].set_xlabel(xlabel)
    axes[0, 0].legend(fontsize=8, frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=dpi)
    plt.close(fig)
    return path
