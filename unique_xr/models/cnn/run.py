"""Table workflows of the annual CNN: what ``unique-xr cnn train / evaluate / predict`` do.

Each function takes a path to a multi-site table laid out like the MetaFlux monthly table
(``TIMESTAMP`` as ``YYYYMM``, ``Site``, ``Lat``, ``PFT``, FLUXNET variable names; see
:func:`unique_xr.towers.forest.read_forest_table`) and keeps its forest site-years.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unique_xr._files import write_csv as write_csv_file
from unique_xr.errors import SpecError
from unique_xr.models.cnn.featuremap import (
    FeatureMaps,
    MapSpec,
    feature_maps_from_table,
)
from unique_xr.models.cnn.model import AnnualCNN, CnnConfig, describe_inputs, fit_cnn
from unique_xr.models.cnn.schema import FOREST_TYPES
from unique_xr.towers.forest import annual_fluxes, read_forest_table

__all__ = ["PREDICTION_COLUMNS", "load_training_set", "predict_table", "score_model", "train_from_table",
           "write_csv"]

#: Columns of ``unique-xr cnn predict``'s CSV (annual sums, g C m-2 yr-1; NEE < 0 is uptake).
PREDICTION_COLUMNS = ("site", "year", "gpp", "nee")


def _forest_rows(path: str | os.PathLike) -> pd.DataFrame:
    table = read_forest_table(path)
    if len(table) == 0:
        raise SpecError(
            f"{path} has no forest site-months: the CNN covers the IGBP forest classes {list(FOREST_TYPES)} "
            "(column PFT/IGBP), and no row has one."
        )
    return table


def load_training_set(path: str | os.PathLike, spec: MapSpec | None = None, *, min_quality: float = 0.5,
                      ) -> tuple[FeatureMaps, np.ndarray, pd.DataFrame]:
    """Feature maps and annual ``(gpp, nee)`` targets of a table's usable forest site-years.

    Returns ``(maps, targets, annual)``, where ``annual`` is :func:`~unique_xr.towers.forest.annual_fluxes`
    of every forest site-year (with the ``usable`` flag that selected the training rows).
    """
    table = _forest_rows(path)
    annual = annual_fluxes(table, min_quality=min_quality)
    maps = feature_maps_from_table(table, spec)
    if not (maps.keys[["site", "year"]].to_numpy() == annual[["site", "year"]].to_numpy()).all():
        raise AssertionError("feature maps and annual sums are not in the same site-year order")  # pragma: no cover
    use = np.flatnonzero(annual["usable"].to_numpy())
    if use.size == 0:
        raise SpecError(
            f"{path} has {len(annual)} forest site-years but none with a usable annual GPP and NEE (12 months of "
            f"each, mean NEE quality >= {min_quality}, GPP > 0); there is nothing to train or score on."
        )
    return maps.subset(use), annual.loc[annual["usable"], ["gpp", "nee"]].to_numpy(), annual


def train_from_table(path: str | os.PathLike, out: str | os.PathLike, *, config: CnnConfig | None = None,
                     spec: MapSpec | None = None, min_quality: float = 0.5, progress: bool = False) -> AnnualCNN:
    """Train the CNN on a table's usable forest site-years and write the model folder ``out``."""
    started = time.perf_counter()
    maps, targets, annual = load_training_set(path, spec, min_quality=min_quality)
    sites = maps.keys.groupby("site")["igbp"].first()
    card: dict[str, Any] = {
        "inputs": describe_inputs(maps.spec),
        "sign_convention": "NEE < 0 is uptake by the ecosystem (FLUXNET convention)",
        "training": {
            "table": os.fspath(path), "site_years": len(maps), "sites": sites.to_dict(),
            "site_years_by_type": maps.keys["igbp"].value_counts().to_dict(),
            "excluded_site_years": int((~annual["usable"]).sum()), "min_quality": min_quality,
            "missing_fraction": round(maps.missing_fraction, 4),
            "targets": "annual sums of monthly GPP_NT_VUT_REF and NEE_VUT_REF x days in month",
        },
    }
    model = fit_cnn(maps, targets, config, progress=progress, card=card)
    model.card["training"]["seconds"] = round(time.perf_counter() - started, 1)
    model.save(out)
    return model


def predict_table(model: AnnualCNN, path: str | os.PathLike) -> pd.DataFrame:
    """Annual GPP and NEE for every forest site-year of a table (targets not needed).

    Site-years with gaps in their inputs are predicted from what is there; one with no input at
    all still gets the model's estimate for its forest type (finite), since every site-year of the
    table gets a row.
    """
    table = _forest_rows(path)
    maps = feature_maps_from_table(table, model.spec)
    return model.predict_frame(maps)


def score_model(model: AnnualCNN, path: str | os.PathLike, *, missing: Sequence[float] = (0.0, 0.1, 0.3, 0.5),
                seed: int = 0, min_quality: float = 0.5) -> pd.DataFrame:
    """Skill of a trained model on a table's usable site-years, with shares of cells hidden at random.

    Returns one row per (missing share, target) with ``n, r, rmse, bias`` in g C m-2 yr-1.
    """
    from unique_xr.models.cnn.occlusion import hide_at_random
    from unique_xr.models.scores import metrics

    maps, targets, _ = load_training_set(path, model.spec, min_quality=min_quality)
    rows = []
    for share in missing:
        observed = hide_at_random(maps.observed, share, np.random.default_rng([seed, int(round(share * 1000))]))
        pred = model.predict(maps, observed)
        for i, name in enumerate(("gpp", "nee")):
            m = metrics(targets[:, i], pred[:, i])
            rows.append({"missing": share, "target": name, **{k: m[k] for k in ("n", "r", "rmse", "bias")}})
    return pd.DataFrame(rows)


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` as CSV atomically (a reader never sees half a file)."""
    return write_csv_file(frame, path, float_format="%.3f")
