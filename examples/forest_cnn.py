"""The gap-tolerant annual GPP/NEE CNN against three classic models, and what it looks at.

This script makes the comparison table, the skill-vs-missingness curve and the attribution
figures of the CNN docs page from one real run on the shared MetaFlux monthly table, so the page
and the numbers printed here cannot disagree. It

1. reads the forest site-months (:func:`unique_xr.towers.forest.read_forest_table`), sums them
   to annual GPP and NEE (:func:`~unique_xr.towers.forest.annual_fluxes`) and keeps the usable
   site-years (12 months of both, mean NEE quality >= 0.5, GPP > 0);
2. cross-validates the CNN, random forest, SVR and LightGBM in the same site-grouped folds, with
   0, 10, 30 and 50 % of the test maps' observed input cells hidden - the same cells for every
   model (:func:`unique_xr.models.cnn.compare.compare_models`);
3. trains one CNN on every usable site-year and maps its occlusion sensitivity by forest type
   (:mod:`unique_xr.models.cnn.attribution`), evaluated on all of them;
4. writes ``skill.csv``, ``summary.json``, ``table.md``, ``attribution.json`` and the figures
   into ``--out`` and prints the comparison table.

Run from anywhere; the full configuration (shipped CnnConfig, 10 folds) takes a while on a
laptop's CPU::

    python examples/forest_cnn.py                    # -> docs/figures/forest_cnn/
    python examples/forest_cnn.py --quick            # tiny CNN, 3 folds: a smoke test (seconds)

``--quick`` writes to a temporary folder unless ``--out`` is given, so it never overwrites the
docs figures. The equivalent command line of step 2 is ``unique-xr cnn evaluate --table T --out DIR``.

Data: FLUXNET2015 (CC-BY-4.0; Pastorello et al. 2020) as compiled by MetaFlux (MIT; Nathaniel et
al. 2023, Sci Data 10:440), see ``shared/data/towers/fluxnet2015_monthly_metaflux_206sites/SOURCE.txt``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from unique_xr.models.cnn.attribution import (
    attribution_figure,
    by_forest_type,
    occlusion_sensitivity,
    variable_importance,
)
from unique_xr.models.cnn.compare import (
    ABLATIONS,
    MODELS,
    Comparison,
    compare_models,
    missingness_figure,
)
from unique_xr.models.cnn.featuremap import MapSpec
from unique_xr.models.cnn.model import TARGETS, CnnConfig, fit_cnn
from unique_xr.models.cnn.run import load_training_set

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO.parent / "shared" / "data" / "towers" / "fluxnet2015_monthly_metaflux_206sites" / \
    "metaflux_fluxnet2015_monthly.csv.gz"
OUT = REPO / "docs" / "figures" / "forest_cnn"
#: The smoke-test configuration of --quick: trains in about a second per fold, for the machinery, not skill.
QUICK = CnnConfig(epochs=3, members=1, channels=8, hidden=16, batch_size=64)
QUICK_FOLDS = 3


def shrink_png(path: Path) -> None:
    """Rewrite a PNG with a 256-colour palette (about a third of matplotlib's RGBA size, same look)."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256)
    small.save(path, optimize=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--table", type=Path, default=TABLE, help="MetaFlux-layout monthly table.")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"Output folder (default {OUT.relative_to(REPO)}; with --quick a temporary folder).")
    parser.add_argument("--folds", type=int, default=10, help="Site-grouped folds (3 with --quick).")
    parser.add_argument("--missing", type=float, nargs="+", default=[0.0, 0.1, 0.3, 0.5],
                        help="Shares of observed input cells hidden in the test maps.")
    parser.add_argument("--quick", action="store_true", help="Tiny CNN and 3 folds: a smoke test, not results.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of folds, hidden cells and models.")
    parser.add_argument("--models", nargs="+", default=[*MODELS, *ABLATIONS],
                        help="Models to compare (default: the CNN, the three classic models and the CNN "
                             "trained without occlusions).")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of the models (default: all).")
    parser.add_argument("--predictions", action="store_true",
                        help="Also write predictions.csv (every out-of-fold prediction; about 2 MB).")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = Path(tempfile.gettempdir()) / "unique_xr_forest_cnn_quick" if args.quick else OUT
    return args


def attribution(maps, targets, config: CnnConfig, out: Path) -> dict:
    """Train on every usable site-year, map occlusion sensitivity by forest type, draw and record it."""
    t0 = time.perf_counter()
    model = fit_cnn(maps, targets, config)
    trained = time.perf_counter() - t0
    sensitivity = occlusion_sensitivity(model, maps)
    importance = variable_importance(model, maps)
    counts = {str(k): int(v) for k, v in maps.keys["igbp"].value_counts().items()}
    figures = {}
    for signed in (False, True):
        by_type = by_forest_type(sensitivity, maps, signed=signed)
        for target in TARGETS:
            name = f"attribution_{target}{'_signed' if signed else ''}.png"
            shrink_png(attribution_figure(by_type, maps.spec, out / name, target=target, counts=counts, signed=signed))
            figures[f"{target}{' signed' if signed else ''}"] = name
    rows = []
    for signed in (False, True):
        for igbp, mean in by_forest_type(importance, maps, signed=signed).items():
            for v, variable in enumerate(maps.spec.variables):
                for j, target in enumerate(TARGETS):
                    rows.append({"igbp": igbp, "variable": variable, "target": target,
                                 "statistic": "mean_signed" if signed else "mean_abs", "value": mean[v, j]})
    table = pd.DataFrame(rows).pivot_table(index=["target", "igbp", "variable"], columns="statistic",
                                           values="value", sort=False).reset_index()
    record = {
        "model_token": model.token, "site_years": len(maps), "site_years_by_type": counts,
        "config": config.to_dict(), "seconds_training": round(trained, 1),
        "seconds_attribution": round(time.perf_counter() - t0 - trained, 1), "units": "g C m-2 yr-1",
        "meaning": "prediction with the full map minus prediction with the cell (or variable) hidden",
        "figures": figures,
        "variable_importance": json.loads(table.to_json(orient="records", double_precision=2)),
    }
    (out / "attribution.json").write_text(json.dumps(record, indent=1))
    return record


def print_importance(record: dict) -> None:
    frame = pd.DataFrame(record["variable_importance"])
    for target in TARGETS:
        wide = frame[frame["target"] == target].pivot(index="igbp", columns="variable", values="mean_abs")
        print(f"\nmean |effect| of hiding a whole variable on annual {target.upper()} (g C m-2 yr-1):")
        print(wide.round(1).to_string())


def main(argv: Sequence[str] | None = None) -> Comparison:
    args = parse_args(argv)
    if not args.table.is_file():
        sys.exit(f"{args.table} not found: pass --table <MetaFlux-layout monthly table>.")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    config = replace(QUICK if args.quick else CnnConfig(), seed=args.seed, threads=args.threads)
    n_folds = QUICK_FOLDS if args.quick else args.folds

    maps, targets, annual = load_training_set(args.table, MapSpec())
    by_type = ", ".join(f"{k} {v}" for k, v in maps.keys["igbp"].value_counts().items())
    print(f"{args.table.name}: {len(annual)} forest site-years, {len(maps)} usable on "
          f"{maps.keys['site'].nunique()} sites ({by_type}); "
          f"{100 * maps.missing_fraction:.1f} % of input cells missing in the data", flush=True)

    result = compare_models(maps, targets, n_folds=n_folds, missing=tuple(args.missing), models=args.models,
                            config=config,
                            seed=args.seed, threads=args.threads, progress=True)
    result.meta["table"] = args.table.name
    result.meta["quick"] = bool(args.quick)
    result.meta["machine"] = f"{platform.system()} {platform.machine()}, python {platform.python_version()}"
    result.to_files(args.out, predictions=args.predictions)
    shrink_png(missingness_figure(result.skill, args.out / "missingness.png",
                                  natural_missing=result.meta["natural_missing"]))
    table = result.table(missing=args.missing)
    (args.out / "table.md").write_text(table + "\n")

    record = attribution(maps, targets, config, args.out)
    print(f"\nOut-of-fold skill, {len(result.folds['test_sites'])} site-grouped folds, annual sums in g C m-2 yr-1 "
          f"(RMSE × = RMSE over the same model's at 0 % hidden; bold: lowest RMSE at that share):\n")
    print(table)
    print_importance(record)
    print(f"\nseconds per model (all folds): {result.meta['seconds']}; attribution model "
          f"{record['seconds_training']} s + {record['seconds_attribution']} s")
    print(f"written to {args.out} in {time.perf_counter() - started:.0f} s")
    return result


if __name__ == "__main__":
    main()
    raise SystemExit(0)
