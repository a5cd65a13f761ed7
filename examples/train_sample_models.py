"""Train the small GPP models shipped in ``unique_xr/data/models/`` for the demo.

``unique-xr demo`` estimates GPP on the embedded sample region without network and without the
shared data, so two small pretrained models ship with the package. This script makes them from
the shared tower tables, with the default training settings and no cross-validation:

``gpp_m``
    the daily tower table ``daily_gpp_x_modis_x_met.csv.gz`` (FLUXNET2015 GPP x MCD43A4 NBAR x
    meteorology), as ``unique-xr train --folds 0 --no-baselines`` would use it;
``gpp_l``
    the same towers' Landsat 7 scenes joined with that table (``unique-xr join-landsat``).

Two choices differ from training on the tables as they are, and both go into the model cards and
the ``SOURCE.md`` written beside each model:

1. Rows whose GPP comes from ``geco-bern/agds`` (sites FI-Hyy and FR-Pue; column ``gpp_source``)
   are left out: that repository is CC BY-NC 4.0, and a shipped model should rest only on
   CC-BY / public-domain / Copernicus-licensed values.
2. The inputs the sample cubes lack (:data:`unique_xr.sample.SAMPLE_MISSING_INPUTS`: Landsat
   thermal; MODIS bands 4, 5, 7 and LST) are blanked in the training table. LightGBM sends a
   missing value down a learned branch only for features that had missing values in training; for
   the others it reads NaN as 0.0 (0 K for a temperature), so a model trained with these inputs
   and given NaN would predict as if every pixel were at absolute zero. Trained without them, the
   trees never split on them and ``allow_missing`` means exactly "not used". Pass
   ``--all-inputs`` to train on every input instead (models for cubes that have them).

Run it from the repository (about 10 s)::

    python examples/train_sample_models.py
    python examples/train_sample_models.py --shared /path/to/shared/data --out /tmp/models
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from unique_xr.models.lgbm import TrainConfig, TrainResult, train
from unique_xr.sample import SAMPLE_MISSING_INPUTS
from unique_xr.towers import landsat_training_table, read_tower_table

REPO = Path(__file__).resolve().parents[1]
TOWERS = Path("towers") / "fluxnet2015_daily_gpp_x_modis_nbar_lst"
DAILY_TABLE = "daily_gpp_x_modis_x_met.csv.gz"
LANDSAT_TABLE = "landsat7_c2l2_at_towers.csv.gz"

#: rows whose ``gpp_source`` starts with this are left out (CC BY-NC repository; see the docstring)
EXCLUDED_SOURCE = "agds"
#: raw table columns that carry each withheld input
WITHHELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "nbar_green": ("Nadir_Reflectance_Band4",),
    "nbar_nir2": ("Nadir_Reflectance_Band5",),
    "nbar_swir2": ("Nadir_Reflectance_Band7",),
    "lst_day_terra": ("LST_Day_1km_Terra",),
    "lst_day_aqua": ("LST_Day_1km_Aqua",),
    "landsat_st": ("ST_B6", "ST_B10"),
}
TABLES = {
    "gpp_m": f"shared data: {(TOWERS / DAILY_TABLE).as_posix()}",
    "gpp_l": f"shared data: {(TOWERS / LANDSAT_TABLE).as_posix()} joined with {(TOWERS / DAILY_TABLE).as_posix()} "
             "(unique-xr join-landsat)",
}


def blank(df: pd.DataFrame, inputs: Sequence[str]) -> pd.DataFrame:
    """``df`` with the raw columns of ``inputs`` set to NaN (every input must have one)."""
    df = df.copy()
    for name in inputs:
        cols = [c for c in WITHHELD_COLUMNS[name] if c in df.columns]
        if not cols:
            raise SystemExit(f"No column of {name} ({WITHHELD_COLUMNS[name]}) in the table; its layout changed.")
        df[cols] = np.nan
    return df


def tables(shared: Path, withheld: dict[str, tuple[str, ...]]) -> dict[str, pd.DataFrame]:
    """The two training tables, licence-filtered and with the withheld inputs blanked."""
    daily = read_tower_table(shared / TOWERS / DAILY_TABLE)
    excluded = daily["gpp_source"].astype(str).str.startswith(EXCLUDED_SOURCE)
    print(f"left out {int(excluded.sum())} rows of sites {sorted(daily.loc[excluded, 'site'].unique())} "
          f"(GPP from {EXCLUDED_SOURCE}, CC BY-NC 4.0)")
    daily = daily.loc[~excluded].reset_index(drop=True)
    landsat = read_tower_table(shared / TOWERS / LANDSAT_TABLE)
    return {
        "gpp_m": blank(daily, withheld["gpp_m"]),
        "gpp_l": landsat_training_table(blank(landsat, withheld["gpp_l"]), daily),
    }


def check_withheld(result: TrainResult, table: pd.DataFrame) -> list[str]:
    """Features that are all-NaN in the training table; fail if the trees use any of them."""
    feats = result.model.features_from_table(table)
    empty = [f for f in result.model.features if feats[f].isna().all()]
    used = [f for f in empty if result.model.card.feature_importance[f] > 0]
    if used:
        raise SystemExit(f"features {used} are all missing in training but have gain; this should not happen")
    return empty


def annotate(result: TrainResult, kind: str, withheld: Sequence[str], unused: Sequence[str]) -> None:
    """Relative table description, exclusions and withheld inputs into the model card."""
    card = result.model.card
    card.training["table"] = TABLES[kind]
    card.training["excluded"] = (f"rows with gpp_source '{EXCLUDED_SOURCE}...' (sites FI-Hyy, FR-Pue): "
                                 "GPP from a CC BY-NC 4.0 repository")
    card.training["inputs_withheld"] = list(withheld)
    card.training["features_unused"] = list(unused)
    card.training["made_by"] = "examples/train_sample_models.py"
    for entry in card.inputs:
        if entry["name"] in withheld:
            entry["used_in_training"] = []
            entry["withheld"] = "blanked in the training table: the demo's sample cubes lack it"


SOURCE_MD = """# Sample {title} model (shipped for `unique-xr demo`)

`model.txt` (LightGBM) and `model_card.json` as written by `GppModel.save`; load with
`unique_xr.load_model(unique_xr.sample.sample_model("{kind}"))`. Made by
`python examples/train_sample_models.py` (default `TrainConfig`, `folds=0`, `baselines=False`).
A small model for the demo, **not** a validated product: no cross-validation was run for it
(see `docs/tower-models.md` for cross-validated scores of the same recipe).

## Training data

- Table: {table}.
- {rows} training rows (site-days{landsat_note}) from {n_sites} eddy-covariance sites, {period}.
- Left out: {excluded}.
- Inputs withheld (blanked before training, because the demo's sample cubes lack them):
  {withheld}. Features the trees therefore never use: {unused}.
  `ds.gpp.estimate(model, allow_missing=...)` with these inputs absent is thus exact, not an
  approximation. Retrain with `--all-inputs` for cubes that have every input.

## Sources, licences and attribution

The model's parameters are derived from the values below. We read each licence as allowing the
redistribution of such a derived product with attribution; the models are distributed under
CC-BY-4.0 with the attributions listed here.

{sources}
- Shared tables assembled from GitHub `stineb/index_based_drought_monitoring`
  (@077631ef, AGPL-3.0 code; the data values are the products above) and
  `pepaaran/mlflx3` (@ce6dc92a, AGPL-3.0 code; only its FLUXNET2015 observed-GPP column is used, not
  its P-model output). Site latitudes from the FLUXNET2015 site list in the same folder.
"""

SOURCES = {
    "gpp": "- Daily GPP (target): FLUXNET2015 `GPP_NT_VUT_REF`, CC-BY-4.0. Pastorello, G. et al. (2020): The "
           "FLUXNET2015 dataset and the ONEFlux processing pipeline for eddy covariance data, Scientific Data 7, 225. "
           "Cite the tower teams of the sites in `model_card.json` (`training.sites`).",
    "modis": "- MODIS MCD43A4 v061 daily NBAR (NASA LP DAAC, Schaaf & Wang), public domain (NASA data policy), "
             "extracted at the tower pixels with AppEEARS.",
    "landsat": "- Landsat 7 ETM+ Collection 2 Level-2 surface reflectance, courtesy of the U.S. Geological Survey, "
               "public domain.",
    "era5": "- ERA5 daily air temperature and shortwave radiation where the tower has none: Hersbach, H. et al. "
            "(2020), Q. J. R. Meteorol. Soc. 146, 1999-2049. Copernicus licence (redistribution of derived "
            "products allowed with attribution): \"Contains modified Copernicus Climate Change Service "
            "information {year}. Neither the European Commission nor ECMWF is responsible for any use that may "
            "be made of the Copernicus information or data it contains.\"",
    "fdk": "- Tower meteorology (air temperature, VPD, PPFD): FluxDataKit (GitHub `geco-bern/FluxDataKit`), "
           "CC-BY-4.0, built on PLUMBER-2 (Ukkola, A. M. et al. (2022), Earth Syst. Sci. Data 14, 449-461) and "
           "FLUXNET2015.",
}


def source_md(result: TrainResult, kind: str) -> str:
    card = result.model.card
    t = card.training
    keys = ("gpp", "modis" if kind == "gpp_m" else "landsat", "era5", "fdk")
    return SOURCE_MD.format(
        title="GPP_M (daily MODIS NBAR, 500 m)" if kind == "gpp_m" else "GPP_L (Landsat, 30 m)",
        kind=kind, table=t["table"], rows=t["qc"]["used"], n_sites=t["n_sites"],
        period=f"{t['period'][0]} to {t['period'][1]}",
        landsat_note="" if kind == "gpp_m" else " with a clear Landsat 7 observation",
        excluded=t["excluded"], withheld=", ".join(f"`{w}`" for w in t["inputs_withheld"]) or "none",
        unused=", ".join(f"`{f}`" for f in t["features_unused"]) or "none",
        sources="\n".join(SOURCES[k] for k in keys).replace("{year}", card.created[:4]),
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data",
                        help="the shared data folder holding towers/ (default: <repo>/../shared/data)")
    parser.add_argument("--out", type=Path, default=REPO / "unique_xr" / "data" / "models",
                        help="where gpp_m/ and gpp_l/ go (default: the package's data/models)")
    parser.add_argument("--all-inputs", action="store_true",
                        help="train on every input (do not withhold what the sample cubes lack)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    folder = args.shared / TOWERS
    for name in (DAILY_TABLE, LANDSAT_TABLE):
        if not (folder / name).is_file():
            sys.exit(f"{folder / name} not found: pass --shared <folder holding {TOWERS.as_posix()}/>.")
    withheld = {k: () for k in SAMPLE_MISSING_INPUTS} if args.all_inputs else SAMPLE_MISSING_INPUTS
    for kind, table in tables(args.shared, withheld).items():
        result = train(table, TrainConfig(kind=kind, folds=0, baselines=False))
        unused = check_withheld(result, table)
        annotate(result, kind, withheld[kind], unused)
        out = result.model.save(args.out / kind)
        (out / "SOURCE.md").write_text(source_md(result, kind))
        sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
        t = result.model.card.training
        print(f"{kind}: {t['qc']['used']} rows, {t['n_sites']} sites, {result.model.card.best_iteration} trees, "
              f"{result.seconds} s -> {out} {json.dumps(sizes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
