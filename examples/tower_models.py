"""Cross-validated results of the tower-trained GPP models (GPP_M, GPP_L) on the shared tables.

This script makes ``docs/tower-models.md`` and its figures from one real run, so the page and
the numbers printed here cannot disagree. It

1. trains GPP_M (daily MODIS NBAR + LST + meteorology) with the default 20 site-grouped folds
   (the table holds 19 sites, so this is leave-one-site-out), GPP_L (Landsat 7 scenes joined with
   the same towers' daily GPP) the same way, and GPP_M once more with spatial-block folds;
2. prints the cross-validated tables (LightGBM and every baseline in the same folds, on the same
   rows) and the check of the issue's goals against the P-model on the same days;
3. draws the figures and writes the page.

Run it from anywhere (about 3-4 minutes on 2 cores)::

    python examples/tower_models.py
    python examples/tower_models.py --shared /path/to/shared/data --out /tmp/tower_models

The equivalent command line for the first model is
``unique-xr train --table <daily table> --target gpp_obs --out models/gpp_m``.
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from unique_xr.models import scores as scoring
from unique_xr.models.lgbm import TrainConfig, TrainResult, train
from unique_xr.towers import landsat_training_table

REPO = Path(__file__).resolve().parents[1]
TOWERS = Path("towers") / "fluxnet2015_daily_gpp_x_modis_nbar_lst"
DAILY_TABLE = "daily_gpp_x_modis_x_met.csv.gz"
LANDSAT_TABLE = "landsat7_c2l2_at_towers.csv.gz"
SITE_METADATA = Path("towers") / "site_metadata" / "ingestr_siteinfo_fluxnet2015.csv"

MODELS = ("lightgbm", "linear_vi", "lue_mod17", "pmodel")
LABELS = {"lightgbm": "LightGBM", "linear_vi": "linear VI regression", "lue_mod17": "MOD17-style LUE",
          "pmodel": "P-model"}
COLOURS = {"lightgbm": "#1b6ca8", "linear_vi": "#9e9e9e", "lue_mod17": "#e0a100", "pmodel": "#c0392b"}
SCALES = {"D": "daily", "8D": "8-day", "MS": "monthly", "YS": "annual"}
PAPER = {"gpp_m": (0.80, 2.47), "gpp_l": (0.83, 2.43)}
GOAL_R, GOAL_RATIO = 0.88, 0.75
DPI = 110


# --------------------------------------------------------------------------------------------
# formatting: every number on the page goes through these, so the page equals the printout


def _fmt(value, spec: str) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return format(value, spec)


def markdown_table(frame: pd.DataFrame, formats: dict[str, str]) -> str:
    """A pipe table of ``frame``; ``formats`` maps column -> format spec (``""`` for text)."""
    cols = list(formats)
    right = [bool(formats[c]) for c in cols]
    lines = ["| " + " | ".join(cols) + " |",
             "|" + "|".join("---:" if r else ":---" for r in right) + "|"]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c], formats[c]) for c in cols) + " |")
    return "\n".join(lines)


SCORE_FORMATS = {"sites": "d", "n": "d", "r": ".3f", "RMSE": ".3f", "bias": "+.3f", "R²": ".3f", "MAE": ".3f"}


def _score_view(scores: pd.DataFrame, first: str, first_values: Callable[[pd.Series], pd.Series]) -> pd.DataFrame:
    return pd.DataFrame({
        first: first_values(scores).to_numpy(),
        "model": scores["model"].map(LABELS).to_numpy(),
        "sites": scores["n_sites"].astype(int).to_numpy(),
        "n": scores["n"].astype(int).to_numpy(),
        "r": scores["r"].to_numpy(), "RMSE": scores["rmse"].to_numpy(), "bias": scores["bias"].to_numpy(),
        "R²": scores["r2"].to_numpy(), "MAE": scores["mae"].to_numpy(),
    })


def overall_table(scores: pd.DataFrame, scales: Sequence[str] = tuple(SCALES)) -> str:
    part = scores[(scores["group_by"] == "overall") & scores["scale"].isin(scales)]
    view = _score_view(part, "scale", lambda s: s["scale"].map(SCALES))
    return markdown_table(view, {"scale": "", "model": "", **SCORE_FORMATS})


def igbp_table(scores: pd.DataFrame) -> str:
    """Daily scores per IGBP class: one row per class, r and RMSE of every model side by side."""
    part = scores[(scores["group_by"] == "igbp") & (scores["scale"] == "D")]
    models = [m for m in MODELS if m in set(part["model"])]
    first = part[part["model"] == models[0]].set_index("group")
    view = pd.DataFrame({"IGBP class": first.index, "sites": first["n_sites"].astype(int), "n": first["n"].astype(int)})
    formats = {"IGBP class": "", "sites": "d", "n": "d"}
    for m in models:
        s = part[part["model"] == m].set_index("group")
        view[f"{LABELS[m]} r"] = s["r"].reindex(view.index)
        view[f"{LABELS[m]} RMSE"] = s["rmse"].reindex(view.index)
        formats |= {f"{LABELS[m]} r": ".3f", f"{LABELS[m]} RMSE": ".3f"}
    return markdown_table(view.reset_index(drop=True), formats)


# --------------------------------------------------------------------------------------------
# runs


def _progress(name: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        print(f"  {name}: fold {done}/{total}", end="\r" if done < total else "\n", flush=True)
    return report


def run_models(daily: Path, landsat: Path, out: Path, *, n_jobs: int, seed: int) -> dict[str, TrainResult]:
    """GPP_M (site folds), GPP_L (site folds), GPP_M (spatial-block folds); each saved under ``out``."""
    runs: dict[str, TrainResult] = {}
    print("GPP_M, 20 site-grouped folds (leave-one-site-out on 19 sites) ...")
    runs["gpp_m"] = train(daily, TrainConfig(kind="gpp_m", folds=20, fold_scheme="site", n_jobs=n_jobs, seed=seed),
                          progress=_progress("GPP_M"))
    runs["gpp_m"].save(out / "gpp_m")
    print("GPP_L: joining Landsat 7 scenes with the towers' daily GPP ...")
    table = landsat_training_table(landsat, daily)
    table_path = out / "gpp_l_training_table.csv.gz"
    table.to_csv(table_path, index=False)
    print(f"  {len(table)} Landsat rows at {table['site'].nunique()} sites -> {table_path}")
    runs["gpp_l"] = train(table_path, TrainConfig(kind="gpp_l", folds=20, fold_scheme="site", n_jobs=n_jobs,
                                                  seed=seed), progress=_progress("GPP_L"))
    runs["gpp_l"].save(out / "gpp_l")
    print("GPP_M, 5 spatial-block folds (5 degree blocks) ...")
    runs["gpp_m_block"] = train(daily, TrainConfig(kind="gpp_m", folds=5, fold_scheme="block", block_deg=5.0,
                                                   n_jobs=n_jobs, seed=seed), progress=_progress("GPP_M block"))
    runs["gpp_m_block"].save(out / "gpp_m_block")
    return runs


# --------------------------------------------------------------------------------------------
# the goals of the issue


def common_rows(oof: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """The rows every model in ``models`` and the observation have (what the score tables use)."""
    ok = np.isfinite(oof[["gpp_obs", *models]].to_numpy(dtype="float64")).all(axis=1)
    return oof[ok]


def goal_check(result: TrainResult) -> dict:
    """LightGBM against every baseline (same rows) and against the P-model on the P-model's days."""
    scores, oof = result.scores, result.oof
    daily = scores[(scores["group_by"] == "overall") & (scores["scale"] == "D")].set_index("model")
    baselines = [m for m in daily.index if m != "lightgbm"]
    beats = {m: bool(daily.loc["lightgbm", "rmse"] < daily.loc[m, "rmse"]) for m in baselines}
    rows = common_rows(oof, ["lightgbm", "pmodel"])
    lgb = scoring.metrics(rows["gpp_obs"], rows["lightgbm"])
    pm = scoring.metrics(rows["gpp_obs"], rows["pmodel"])
    ratio = lgb["rmse"] / pm["rmse"]
    per_site = []
    for site, part in oof.groupby("site", sort=True):
        has_pm = part["pmodel"].notna().any()
        part = common_rows(part, ["lightgbm", "pmodel"] if has_pm else ["lightgbm"])
        m = scoring.metrics(part["gpp_obs"], part["lightgbm"])
        p = scoring.metrics(part["gpp_obs"], part["pmodel"]) if has_pm else {k: np.nan for k in scoring.METRICS}
        per_site.append({"site": site, "IGBP": part["igbp"].iloc[0], "days": m["n"],
                         "LightGBM r": m["r"], "LightGBM RMSE": m["rmse"], "LightGBM bias": m["bias"],
                         "P-model r": p["r"], "P-model RMSE": p["rmse"], "P-model bias": p["bias"],
                         "RMSE ratio": m["rmse"] / p["rmse"] if has_pm else np.nan})
    return {
        "daily": daily, "beats": beats, "goal1": all(beats.values()),
        "n": lgb["n"], "n_sites": int(rows["site"].nunique()), "lgb": lgb, "pm": pm, "ratio": ratio,
        "goal2": bool(lgb["r"] >= GOAL_R and ratio <= GOAL_RATIO),
        "per_site": pd.DataFrame(per_site),
    }


PER_SITE_FORMATS = {"site": "", "IGBP": "", "days": "d", "LightGBM r": ".3f", "LightGBM RMSE": ".3f",
                    "LightGBM bias": "+.3f", "P-model r": ".3f", "P-model RMSE": ".3f", "P-model bias": "+.3f",
                    "RMSE ratio": ".2f"}


def goal_text(goal: dict) -> str:
    """The goal check in plain words (printed and written to the page)."""
    d = goal["daily"]
    lg = d.loc["lightgbm"]
    lines = [f"Goal 1, daily RMSE below every baseline on the same rows ({int(lg['n'])} site-days, "
             f"{int(lg['n_sites'])} sites): **{'met' if goal['goal1'] else 'not met'}**. LightGBM "
             f"{lg['rmse']:.3f}; " + "; ".join(
                 f"{LABELS[m]} {d.loc[m, 'rmse']:.3f} ({'beaten' if ok else 'NOT beaten'})"
                 for m, ok in goal["beats"].items()) + " g C m-2 d-1."]
    lgb, pm = goal["lgb"], goal["pm"]
    lines.append(
        f"Goal 2, on the {goal['n']} days with a P-model value ({goal['n_sites']} sites, each predicted by a model "
        f"that never saw it): LightGBM r {lgb['r']:.3f} (goal >= {GOAL_R:.2f}), RMSE {lgb['rmse']:.3f} vs the "
        f"P-model's {pm['rmse']:.3f} (r {pm['r']:.3f}): ratio {goal['ratio']:.3f} (goal <= {GOAL_RATIO:.2f}): "
        f"**{'met' if goal['goal2'] else 'not met'}** (r {'met' if lgb['r'] >= GOAL_R else 'not met'}, "
        f"RMSE ratio {'met' if goal['ratio'] <= GOAL_RATIO else 'not met'})."
    )
    return "\n\n".join(lines)


# --------------------------------------------------------------------------------------------
# figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 9, "figure.dpi": DPI, "savefig.dpi": DPI})
    return plt


def _save(fig, path: Path) -> None:
    """Write a PNG with a 256-colour palette (a third of matplotlib's RGBA size, same look)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    Image.open(buffer).convert("RGB").quantize(colors=256).save(path, optimize=True)


def _best_baseline(scores: pd.DataFrame) -> str:
    d = scores[(scores["group_by"] == "overall") & (scores["scale"] == "D") & (scores["model"] != "lightgbm")]
    return str(d.loc[d["rmse"].idxmin(), "model"])


def fig_scatter(rows: pd.DataFrame, models: Sequence[str], path: Path, title: str) -> None:
    """Observed vs out-of-fold predicted daily GPP, one panel per model, with the 1:1 line.

    Hexbin density for large samples, plain points for small ones (GPP_L).
    """
    plt = _pyplot()
    top = float(np.nanpercentile(rows[["gpp_obs", *models]].to_numpy(), 99.9)) * 1.05
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models) + 1.0, 3.9), sharex=True, sharey=True,
                             layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, model in zip(axes, models, strict=True):
        m = scoring.metrics(rows["gpp_obs"], rows[model])
        if len(rows) > 5000:
            hb = ax.hexbin(rows["gpp_obs"], rows[model], gridsize=55, extent=(-1, top, -1, top), bins="log",
                           cmap="viridis", mincnt=1, linewidths=0)
        else:
            ax.scatter(rows["gpp_obs"], rows[model], s=5, alpha=0.5, color=COLOURS[model], linewidths=0)
        ax.plot([-1, top], [-1, top], color="k", lw=0.8)
        ax.set(xlim=(-1, top), ylim=(-1, top), xlabel="observed GPP (g C m-2 d-1)",
               title=f"{LABELS[model]}\nr {m['r']:.3f}, RMSE {m['rmse']:.3f}, n {m['n']}")
        ax.set_box_aspect(1)
    axes[0].set_ylabel("out-of-fold predicted GPP (g C m-2 d-1)")
    if len(rows) > 5000:
        fig.colorbar(hb, ax=axes, shrink=0.8, label="site-days")
    fig.suptitle(title)
    _save(fig, path)


def pick_timeseries_sites(oof: pd.DataFrame, n: int = 4) -> list[str]:
    """``n`` well-covered sites (with P-model days), each of another IGBP class and country."""
    ok = oof.dropna(subset=["gpp_obs", "lightgbm", "pmodel"])
    per_site = ok.groupby("site").agg(igbp=("igbp", "first"), days=("site", "size")).reset_index()
    chosen: list[str] = []
    classes: set[str] = set()
    countries: set[str] = set()
    for row in per_site.sort_values(["days", "site"], ascending=[False, True]).itertuples():
        if row.igbp not in classes and row.site[:2] not in countries:
            chosen.append(row.site)
            classes.add(row.igbp)
            countries.add(row.site[:2])
    return chosen[:n]


def _two_best_years(dates: pd.Series) -> tuple[pd.Timestamp, pd.Timestamp]:
    counts = dates.dt.year.value_counts().sort_index()
    pairs = {y: counts.get(y, 0) + counts.get(y + 1, 0) for y in counts.index}
    start = max(pairs, key=lambda y: (pairs[y], -y))
    return pd.Timestamp(f"{start}-01-01"), pd.Timestamp(f"{start + 1}-12-31")


def fig_timeseries(oof: pd.DataFrame, sites: Sequence[str], path: Path) -> None:
    """Observed, LightGBM out-of-fold and P-model daily GPP over two years at a few sites."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(sites), 1, figsize=(8.5, 1.9 * len(sites)), layout="constrained")
    for ax, site in zip(np.atleast_1d(axes), sites, strict=True):
        part = oof[oof["site"] == site].sort_values("date")
        start, end = _two_best_years(part.loc[part["gpp_obs"].notna(), "date"])
        days = pd.date_range(start, end, freq="D")
        part = part.set_index("date").reindex(days)
        m = scoring.metrics(part["gpp_obs"], part["lightgbm"])
        ax.plot(days, part["gpp_obs"], ".", ms=2.2, color="k", label="observed (FLUXNET2015)")
        ax.plot(days, part["lightgbm"], lw=1.0, color=COLOURS["lightgbm"], label="LightGBM, site left out")
        if part["pmodel"].notna().any():
            ax.plot(days, part["pmodel"], lw=0.9, color=COLOURS["pmodel"], alpha=0.8, label="P-model")
        igbp = oof.loc[oof["site"] == site, "igbp"].iloc[0]
        ax.set_title(f"{site} ({igbp}), {start.year}-{end.year}: LightGBM r {m['r']:.3f}, RMSE {m['rmse']:.3f}",
                     loc="left")
        ax.set_ylabel("GPP (g C m-2 d-1)")
        ax.set_xlim(days[0], days[-1])
    np.atleast_1d(axes)[0].legend(loc="upper right", ncol=3, fontsize=7, frameon=False)
    _save(fig, path)


def fig_igbp_rmse(scores: pd.DataFrame, path: Path) -> None:
    """Daily out-of-fold RMSE per IGBP class, one bar per model (same rows for all models)."""
    plt = _pyplot()
    part = scores[(scores["group_by"] == "igbp") & (scores["scale"] == "D")]
    models = [m for m in MODELS if m in set(part["model"])]
    classes = sorted(part["group"].unique())
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(7.5, 3.2), layout="constrained")
    x = np.arange(len(classes))
    for i, m in enumerate(models):
        rmse = part[part["model"] == m].set_index("group")["rmse"].reindex(classes)
        ax.bar(x + (i - (len(models) - 1) / 2) * width, rmse, width, color=COLOURS[m], label=LABELS[m])
    sites = part[part["model"] == models[0]].set_index("group")["n_sites"].reindex(classes)
    ax.set_xticks(x, [f"{c}\n({int(n)} site{'s' if n > 1 else ''})" for c, n in zip(classes, sites, strict=True)])
    ax.set_ylim(0, float(part["rmse"].max()) * 1.18)
    ax.set_ylabel("daily RMSE (g C m-2 d-1)")
    ax.set_title("GPP_M: daily out-of-fold RMSE per IGBP class (leave-one-site-out, same rows for every model)")
    ax.legend(ncol=len(models), fontsize=7, frameon=False, loc="upper left")
    _save(fig, path)


def fig_importance(importance: dict[str, float], path: Path) -> None:
    """Total gain per feature of the final GPP_M model, as a share of the total."""
    plt = _pyplot()
    gain = pd.Series(importance, dtype="float64").sort_values()
    share = 100 * gain / gain.sum()
    fig, ax = plt.subplots(figsize=(5.5, 0.17 * len(share) + 0.8), layout="constrained")
    ax.barh(share.index, share.to_numpy(), color=COLOURS["lightgbm"])
    ax.set_xlabel("share of total gain (%)")
    ax.set_title("GPP_M final model: feature importance (gain)")
    ax.tick_params(axis="y", labelsize=7)
    _save(fig, path)


def gpp_l_rows(result: TrainResult) -> pd.DataFrame:
    """The rows the GPP_L table is scored on: site-day means of the scenes, where every model has a value."""
    oof = result.oof
    models = [m for m in MODELS if m in oof.columns]
    per_day = oof.groupby(["site", "date"], as_index=False)[["gpp_obs", *models]].mean()
    return common_rows(per_day, models)


# --------------------------------------------------------------------------------------------
# data description


def site_table(daily: pd.DataFrame, oof: pd.DataFrame, metadata: Path) -> pd.DataFrame:
    """One row per site: class used, FLUXNET2015 class, years, GPP days, P-model days, tower met days."""
    d = daily.assign(year=pd.to_datetime(daily["date"]).dt.year)
    view = d.groupby("site").agg(
        first=("year", "min"), last=("year", "max"),
        gpp_days=("gpp_obs", lambda s: int(s.notna().sum())),
        pmodel_days=("gpp_pmodel", lambda s: int(s.notna().sum())),
        tower_met_days=("tower_temp", lambda s: int(s.notna().sum())),
        era5_days=("t2m_era5", lambda s: int(s.notna().sum())),
        gpp_source=("gpp_source", "first"),
        rows=("site", "size"),
    )
    view["used"] = oof.groupby("site").size().reindex(view.index).fillna(0).astype(int)
    view["IGBP (table)"] = oof.groupby("site")["igbp"].first().reindex(view.index)
    if metadata.is_file():
        meta = pd.read_csv(metadata).set_index("sitename")["classid"]
        view["IGBP (FLUXNET2015)"] = meta.reindex(view.index).fillna("–")
    else:
        view["IGBP (FLUXNET2015)"] = "–"
    view["years"] = view["first"].astype(str) + "-" + view["last"].astype(str)
    view["GPP"] = np.where(view["gpp_source"].str.contains("unfiltered"), "unfiltered", "filtered")
    return view.reset_index()


SITE_COLUMNS = {"gpp_days": "GPP days", "pmodel_days": "P-model days", "tower_met_days": "tower met days",
                "era5_days": "ERA5 days"}
SITE_FORMATS = {"site": "", "IGBP (table)": "", "IGBP (FLUXNET2015)": "", "years": "", "GPP": "",
                "GPP days": "d", "used": "d", "P-model days": "d", "tower met days": "d", "ERA5 days": "d"}


# --------------------------------------------------------------------------------------------
# the page


def _versions(card) -> str:
    return ", ".join(f"{k} {v}" for k, v in card.versions.items())


def _fold_text(result: TrainResult) -> str:
    folds = result.folds
    return f"{folds.scheme}, {len(folds)} folds (requested {folds.requested})"


def _block_table(result: TrainResult) -> str:
    blocks = result.folds.params.get("blocks", {})
    rows = [{"fold": k + 1, "block(s)": "; ".join(sorted({blocks.get(s, "?") for s in sites})),
             "test sites": ", ".join(sites)} for k, sites in enumerate(result.folds.test_sites)]
    return markdown_table(pd.DataFrame(rows), {"fold": "d", "block(s)": "", "test sites": ""})


def build_sections(runs: dict[str, TrainResult], goal: dict, sites: pd.DataFrame) -> dict[str, str]:
    """Every table and sentence with a number in it, formatted once."""
    m, lr, blk = runs["gpp_m"], runs["gpp_l"], runs["gpp_m_block"]
    no_pm = [x for x in MODELS[:-1] if x in m.oof.columns]
    all_sites = scoring.score_table(m.oof, models=no_pm, by=("overall",), scales=("D",))
    l_rows = gpp_l_rows(lr)
    m_rows = common_rows(m.oof, [x for x in MODELS if x in m.oof.columns])
    card = m.model.card
    qc_m, qc_l = card.training["qc"], lr.model.card.training["qc"]
    imp = pd.Series(card.feature_importance, dtype="float64")
    top = (100 * imp / imp.sum()).sort_values(ascending=False).head(5)
    lgb_m = goal["daily"].loc["lightgbm"]
    lgb_l = _daily_lightgbm(lr.scores)
    lgb_b = _daily_lightgbm(blk.scores)
    per_site = goal["per_site"]
    biased = per_site[per_site["LightGBM bias"].abs() > 1.0].sort_values("LightGBM bias")
    bias_note = "; ".join(
        f"{r['site']} ({r['IGBP']}) {r['LightGBM bias']:+.2f}"
        + (f" (P-model {r['P-model bias']:+.2f})" if np.isfinite(r["P-model bias"]) else " (no P-model)")
        for _, r in biased.iterrows())
    countries = sites["site"].str[:2].value_counts()
    span = sites["last"] - sites["first"] + 1
    known = sites["IGBP (FLUXNET2015)"] != "–"
    mismatch = sites[known & (sites["IGBP (table)"] != sites["IGBP (FLUXNET2015)"])]
    rows = int(sites["rows"].sum())
    q_obs, q_lgb = (float(np.nanpercentile(m.oof[c], 99)) for c in ("gpp_obs", "lightgbm"))
    return {
        "countries": ", ".join(f"{c} {n}" for c, n in countries.items()),
        "spans": f"{int(span.min())} to {int(span.max())} years",
        "met_share": (f"tower meteorology on {100 * sites['tower_met_days'].sum() / rows:.0f} % of the {rows} "
                      f"site-days ({int((sites['tower_met_days'] > 0).sum())} sites), ERA5 temperature and "
                      f"radiation on {100 * sites['era5_days'].sum() / rows:.0f} %"),
        "no_pmodel": ", ".join(sites.loc[sites["pmodel_days"] == 0, "site"]) or "none",
        "unfiltered": ", ".join(sites.loc[sites["GPP"] == "unfiltered", "site"]) or "none",
        "class_mismatch": (f"{len(mismatch)} of {len(sites)} sites ("
                           + ", ".join(f"{r['site']} {r['IGBP (table)']} vs {r['IGBP (FLUXNET2015)']}"
                                       for _, r in mismatch.iterrows()) + ")"),
        "bias_note": bias_note or "none",
        "qc": (f"GPP_M used {qc_m['used']} of {qc_m['rows']} site-days ({qc_m['target_missing']} without observed "
               f"GPP, {qc_m['target_out_of_range']} outside the plausible range, {qc_m['no_reflectance']} without NIR "
               f"reflectance). GPP_L used {qc_l['used']} of {qc_l['rows']} Landsat rows ({qc_l['target_missing']} "
               f"without GPP on the scene's day, {qc_l['no_reflectance']} cloudy or without reflectance)."),
        "final_model": (f"final GPP_M model trained on all {card.training['n_sites']} sites with {card.best_iteration} "
                        "trees; top five features by gain: " + ", ".join(f"`{k}` {v:.1f} %" for k, v in top.items())),
        "final_gpp_l": f"final GPP_L model: {lr.model.card.best_iteration} trees",
        "block_sentence": (f"daily LightGBM r {lgb_b['r']:.3f}, RMSE {lgb_b['rmse']:.3f}, against {lgb_m['r']:.3f} / "
                           f"{lgb_m['rmse']:.3f} with leave-one-site-out on the same rows"),
        "vs_paper": (f"GPP_M r {lgb_m['r']:.3f} / RMSE {lgb_m['rmse']:.3f}, GPP_L r {lgb_l['r']:.3f} / RMSE "
                     f"{lgb_l['rmse']:.3f} (paper: {PAPER['gpp_m'][0]:.2f} / {PAPER['gpp_m'][1]:.2f} and "
                     f"{PAPER['gpp_l'][0]:.2f} / {PAPER['gpp_l'][1]:.2f})"),
        "timing": (f"GPP_M {m.seconds:.0f} s, GPP_L {lr.seconds:.0f} s, GPP_M block folds {blk.seconds:.0f} s "
                   "(each including its final model)"),
        "gpp_m_overall": overall_table(m.scores),
        "gpp_m_all_sites": overall_table(all_sites),
        "gpp_m_igbp": igbp_table(m.scores),
        "goal": goal_text(goal),
        "per_site": markdown_table(goal["per_site"], PER_SITE_FORMATS),
        "gpp_l_overall": overall_table(lr.scores, ("D",)),
        "gpp_l_igbp": igbp_table(lr.scores),
        "gpp_l_rows": f"{len(l_rows)} site-days at {l_rows['site'].nunique()} sites",
        "common_rows": f"{len(m_rows)} of the {len(m.oof)} site-days used",
        "lgb_rows": f"{int(m.oof['lightgbm'].notna().sum())} of them",
        "block_overall": overall_table(blk.scores, ("D",)),
        "block_folds": _block_table(blk),
        "sites": markdown_table(sites.rename(columns=SITE_COLUMNS), SITE_FORMATS),
        "range_note": (f"99th percentile of the observed daily GPP {q_obs:.2f}, of LightGBM's out-of-fold "
                       f"predictions {q_lgb:.2f} g C m-2 d-1 (all {len(m.oof)} site-days used)"),
    }


def _daily_lightgbm(scores: pd.DataFrame) -> pd.Series:
    pick = (scores["group_by"] == "overall") & (scores["scale"] == "D") & (scores["model"] == "lightgbm")
    return scores[pick].iloc[0]


def print_sections(sections: dict[str, str], runs: dict[str, TrainResult]) -> None:
    card = runs["gpp_m"].model.card
    print("\n## Run summary\n")
    print(f"- run {card.created}; {_versions(card)}")
    for key in ("qc", "final_model", "final_gpp_l", "timing", "vs_paper"):
        print(f"- {sections[key]}")
    print(f"- GPP_M same-rows table: {sections['common_rows']}; LightGBM predicts {sections['lgb_rows']}")
    print(f"- spatial-block folds: {sections['block_sentence']}")
    print(f"- sites per country: {sections['countries']}; record spans {sections['spans']}")
    print(f"- {sections['met_share']}")
    print(f"- no P-model: {sections['no_pmodel']}; unfiltered GPP: {sections['unfiltered']}")
    print(f"- IGBP class of the table differs from FLUXNET2015's at {sections['class_mismatch']}")
    print(f"- {sections['range_note']}")
    print(f"- LightGBM daily bias beyond +-1 g C m-2 d-1 (per-site table): {sections['bias_note']}")
    heads = {
        "sites": "Sites in the shared daily table",
        "gpp_m_overall": f"GPP_M, {_fold_text(runs['gpp_m'])}: overall, every time scale, same rows for every model",
        "gpp_m_all_sites": "GPP_M: daily, all sites (no P-model, so every site counts)",
        "gpp_m_igbp": "GPP_M: daily per IGBP class",
        "goal": "Goal check",
        "per_site": "GPP_M: per site, daily, on the P-model's days (all days where a site has no P-model)",
        "gpp_l_overall": f"GPP_L, {_fold_text(runs['gpp_l'])}: daily (site-days with a clear Landsat 7 scene)",
        "gpp_l_igbp": "GPP_L: daily per IGBP class",
        "block_overall": f"GPP_M, {_fold_text(runs['gpp_m_block'])}: daily",
        "block_folds": "Spatial-block folds",
    }
    for key, head in heads.items():
        print(f"\n## {head}\n\n{sections[key]}")


def write_page(path: Path, sections: dict[str, str], runs: dict[str, TrainResult], goal: dict,
               figures: dict[str, str], seconds: float, n_jobs: int) -> None:
    m, blk = runs["gpp_m"], runs["gpp_m_block"]
    card = m.model.card
    n_sites = card.training["n_sites"]
    best = _best_baseline(m.scores)
    fig = {k: f"figures/tower_models/{v}" for k, v in figures.items()}
    text = f"""# Tower-trained GPP models: cross-validated results on real data

*Generated by [`examples/tower_models.py`](../examples/tower_models.py) on {card.created} in {seconds:.0f} s
({n_jobs} LightGBM threads, {platform.machine()}); do not edit by hand: rerun the script. Every result below is
printed by the same run.*

UNIQUE step 1 trains two gradient-boosted (LightGBM) models of daily gross primary production (GPP,
g C m-2 d-1) on eddy-covariance towers and judges them only on towers they have never seen.

- **GPP_M** reads the daily MODIS tower-pixel table: MCD43A4 NBAR reflectance (7 bands, with their mandatory
  QA: full and magnitude inversions kept), MOD11A1/MYD11A1 day land-surface temperature, and meteorology
  (tower air temperature, PPFD and VPD where the tower has them, ERA5 2 m temperature and shortwave radiation
  otherwise). Per site, NBAR gaps of up to 30 days are interpolated and each band is smoothed with a centred
  15-day running median (half of the daily retrievals of bands 1, 3, 5 and 7 are missing at these towers);
  LST (mean of Terra and Aqua) gets 10-day gap filling and a 7-day mean.
- **GPP_L** reads Landsat 7 Collection 2 Level-2 scenes at the towers (surface reflectance and surface
  temperature from the raw DN, cloud, shadow, cirrus and snow removed with `QA_PIXEL`), joined with the same
  towers' daily GPP and meteorology on the day of the scene. Each scene stands alone (no smoothing).

Derived features (`unique_xr.models.features`): the bands; NDVI, EVI, NIRv, kNDVI, LSWI and the NIR/SWIR2
normalised difference; LST; day of year; daily top-of-atmosphere radiation R_toa from latitude and day
(FAO-56); NIRv x R_toa, EVI x R_toa, NIRv x shortwave; air temperature, shortwave radiation, VPD and, for
GPP_M, their trailing 7- and 30-day means. The trees learn GPP per unit of incoming radiation (the day's
shortwave where the table has it, 0.55 R_toa where it does not, floored at 25 W m-2) with a Huber loss
(alpha = 2), and predictions are multiplied back. In development runs on this table (leave-site-out, all
rows; not rerun here) the daily RMSE was 2.18 g C m-2 d-1 for GPP per R_toa with squared loss, 2.16 with
Huber loss and 2.13 per shortwave with Huber loss; a fixed 300 trees without early stopping gave 2.22. In every outer training fold, early stopping picks the number of trees on
an inner site-grouped split (20 % of the training sites held out, patience 100, at most 1000 trees) and the
model is refitted on the whole training fold; no row of a test site is seen. GPP_M needs the NIR band,
GPP_L red and NIR; every other missing input is left to LightGBM's missing-value handling.

Baselines, in the same folds: **linear VI regression** (least squares on NDVI, EVI, NIRv), a **MOD17-style
light-use-efficiency model** (eps_max, temperature and VPD ramps calibrated per IGBP class on the training
folds) and the **P-model** GPP column of the table (mlflx3 output; nothing fitted). Scores are computed on
identical rows for every model: the site-days where the observation and every model have a value; 8-day,
monthly and annual scores are per-site means over windows with at least half their days present.

## Rerun

```bash
pip install -e ".[all]"                      # lightgbm, matplotlib, ...
python examples/tower_models.py --n-jobs {n_jobs}  # --shared <path to shared/data> --out <outputs>
```

The scores depend on the LightGBM thread count (its histogram sums run in another order), so rerun with
the `--n-jobs` above to get these numbers exactly.

The first model is what the command line trains by default (it also saves the model, its card,
`cv_scores.csv` and `cv_predictions.csv.gz`):

```bash
unique-xr train --table ../shared/data/{(TOWERS / DAILY_TABLE).as_posix()} --target gpp_obs --out models/gpp_m
unique-xr join-landsat --landsat ../shared/data/{(TOWERS / LANDSAT_TABLE).as_posix()} \\
    --daily ../shared/data/{(TOWERS / DAILY_TABLE).as_posix()} --out gpp_l_table.csv.gz
unique-xr train --table gpp_l_table.csv.gz --target gpp_obs --model gpp_l --out models/gpp_l
```

## Data

{n_sites} FLUXNET2015 sites, {card.training['period'][0]} to {card.training['period'][1]}. {sections['qc']}
*used* below counts GPP_M's site-days; the *days* columns count rows with a value.

{sections['sites']}

*IGBP (table)* is the class the models and the per-class scores use (`igbp_land_use` of the table);
*IGBP (FLUXNET2015)* is the site's class in the FLUXNET2015 site list, shown for comparison.

## GPP_M: leave-one-site-out cross-validation

`TrainConfig(folds=20)`, the paper's 20 folds, on {n_sites} sites: each site is its own fold
({_fold_text(m)}). The first table is the one `unique-xr train` prints. Its rows are the site-days where
every model has a value: a P-model value (so the {n_sites - goal['n_sites']} sites without one are not in it)
and NDVI, EVI and NIRv for the two fitted baselines (the smoothed red and blue NBAR bands stay missing
through long winter gaps), {sections['common_rows']}. LightGBM, which needs only the NIR band, predicts
{sections['lgb_rows']}. The second table scores LightGBM and the two fitted baselines on every site.

{sections['gpp_m_overall']}

Daily, all sites, without the P-model:

{sections['gpp_m_all_sites']}

Daily, per IGBP class (same rows as the first table):

{sections['gpp_m_igbp']}

![observed vs predicted]({fig['scatter']})

*Observed vs out-of-fold predicted daily GPP on the rows of the first table, LightGBM and the best baseline
({LABELS[best]}). LightGBM compresses the range: it under-predicts the most productive days and
over-predicts the least productive ones ({sections['range_note']}).*

![time series]({fig['timeseries']})

*Two years at four well-covered sites of different IGBP classes and countries: every LightGBM value comes
from a model that never saw the site.*

![RMSE per class]({fig['igbp']})

![feature importance]({fig['importance']})

*Feature importance (total gain) of the {sections['final_model']}.*

## Goal check

The issue asks for (1) a daily leave-site-out RMSE below every baseline in the same run and (2) on sites
the model has never seen, r >= {GOAL_R:.2f} and RMSE <= {GOAL_RATIO:.2f} x the P-model's RMSE on the same days.

{sections['goal']}

Per site, daily (days with a P-model value; for sites without one, all their days):

{sections['per_site']}

Sites where LightGBM's daily bias is beyond ±1 g C m-2 d-1: {sections['bias_note']}. Where the P-model is
biased the same way, the tower's GPP is probably unusual for what the inputs show (a wetland labelled as
savanna, say: see the class column of the site table); where it is not, the model misses something
site-specific (management of grassland and crops, drought in a Mediterranean evergreen forest).

## GPP_L: Landsat 7, leave-one-site-out

Scored per observation day ({sections['gpp_l_rows']}; two scenes on one site-day are averaged): Landsat
revisits are too sparse for 8-day or monthly means; {sections['final_gpp_l']}.

{sections['gpp_l_overall']}

{sections['gpp_l_igbp']}

![GPP_L observed vs predicted]({fig['gpp_l']})

## GPP_M with spatial-block folds

Sites binned into 5 degree latitude/longitude blocks and whole blocks held out
({_fold_text(blk)}), so a tower is never predicted by a model trained on its neighbours:
{sections['block_sentence']}.

{sections['block_overall']}

{sections['block_folds']}

## How these data differ from the paper

- **Towers.** The paper cross-validated on 309 towers (20-fold spatial CV) and reports r 0.80 / RMSE 2.47
  g C m-2 d-1 for GPP_M and r 0.83 / 2.43 for GPP_L. Here the shared table has {n_sites} sites (the curators
  withheld the rows of some sites for independent evaluation), by country {sections['countries']}: mostly
  central Europe and Australia; 20 folds therefore become leave-one-site-out.
  Several classes rest on one to three sites, so the per-class numbers are anecdotes, not estimates. This
  run: {sections['vs_paper']}; with so few and so different sites the comparison says little.
- **Years.** {card.training['period'][0][:4]}-{card.training['period'][1][:4]} (MODIS era up to the end of
  FLUXNET2015), per-site records of {sections['spans']}; the Landsat model sees Landsat 7 only.
- **Meteorology.** The table has {sections['met_share']} (FluxDataKit drivers and the upstream ERA5
  extraction); VPD comes from towers only. Elsewhere the trees see missing values.
- **P-model.** Only {goal['n_sites']} sites have P-model GPP (mlflx3 output); none for {sections['no_pmodel']}.
  The observed GPP of {sections['unfiltered']} is FLUXNET2015 `GPP_NT_VUT_REF` *unfiltered* (no mlflx
  quality filtering), while the other sites' GPP was filtered by mlflx.
- **Land cover.** The class per site is the table's `igbp_land_use`, which disagrees with the FLUXNET2015
  site list at {sections['class_mismatch']}; per-class scores and the light-use-efficiency baseline's
  per-class calibration use the table's class.
- **Pixels.** MODIS values are the single 500 m (LST 1 km) pixel containing the tower; Landsat the 30 m pixel.

## Sources and licences

- Observed GPP: FLUXNET2015 (`GPP_NT_VUT_REF`), CC-BY-4.0, Pastorello et al. (2020), *Sci. Data* 7:225;
  via pepaaran/mlflx3 (`pmodel_outputs.csv`, AGPL-3.0 repository) and the agds daily table.
- P-model GPP: output of the mlflx3 project (pepaaran/mlflx3, a refactor of geco-bern/mlflx2), AGPL-3.0;
  attribute both FLUXNET2015 and mlflx3.
- MODIS MCD43A4, MOD11A1, MYD11A1 and Landsat 7 C2 L2 values: NASA/USGS, public domain (point extractions
  from stineb/index_based_drought_monitoring). ERA5 (Copernicus) and FluxDataKit tower meteorology as
  described in the shared folders' `SOURCE.txt`.
- FLUXNET2015 site classes: geco-bern/ingestr site list (FLUXNET2015 metadata, CC-BY-4.0).

## Run details

- {sections['timing']}; seed {m.model.card.params.get('seed')}; LightGBM parameters in each model's
  `model_card.json` (written with the models to `--out`).
- Library versions (model card): {_versions(card)}.
"""
    path.write_text(text)


# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data",
                        help="the shared data folder holding towers/ (default: <repo>/../shared/data)")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "tower_models",
                        help="models, cross-validation scores and predictions (default: <repo>/build/tower_models)")
    parser.add_argument("--docs", type=Path, default=REPO / "docs",
                        help="where tower-models.md and figures/tower_models/ are written (default: <repo>/docs)")
    parser.add_argument("--n-jobs", type=int, default=2, help="LightGBM threads (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of folds, bagging and inner splits (default 0)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    daily_path = args.shared / TOWERS / DAILY_TABLE
    landsat_path = args.shared / TOWERS / LANDSAT_TABLE
    for p in (daily_path, landsat_path):
        if not p.is_file():
            sys.exit(f"{p} not found: pass --shared <folder holding towers/{TOWERS.name}/>.")
    args.out.mkdir(parents=True, exist_ok=True)
    fig_dir = args.docs / "figures" / "tower_models"
    fig_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    runs = run_models(daily_path, landsat_path, args.out, n_jobs=args.n_jobs, seed=args.seed)
    m = runs["gpp_m"]
    goal = goal_check(m)
    daily = pd.read_csv(daily_path, usecols=["site", "date", "gpp_obs", "gpp_pmodel", "gpp_source", "tower_temp",
                                             "t2m_era5"])
    sites = site_table(daily, m.oof, args.shared / SITE_METADATA)
    sections = build_sections(runs, goal, sites)
    print_sections(sections, runs)

    best = _best_baseline(m.scores)
    figures = {"scatter": "gpp_m_scatter.png", "timeseries": "gpp_m_timeseries.png", "igbp": "gpp_m_rmse_igbp.png",
               "importance": "gpp_m_importance.png", "gpp_l": "gpp_l_scatter.png"}
    models = [x for x in MODELS if x in m.oof.columns]
    fig_scatter(common_rows(m.oof, models), ["lightgbm", best], fig_dir / figures["scatter"],
                "GPP_M, daily, leave-one-site-out")
    fig_timeseries(m.oof, pick_timeseries_sites(m.oof), fig_dir / figures["timeseries"])
    fig_igbp_rmse(m.scores, fig_dir / figures["igbp"])
    fig_importance(m.model.card.feature_importance, fig_dir / figures["importance"])
    fig_scatter(gpp_l_rows(runs["gpp_l"]), ["lightgbm", _best_baseline(runs["gpp_l"].scores)],
                fig_dir / figures["gpp_l"], "GPP_L (Landsat 7), daily, leave-one-site-out")

    seconds = time.perf_counter() - t0
    page = args.docs / "tower-models.md"
    write_page(page, sections, runs, goal, figures, seconds, args.n_jobs)
    print(f"\nwrote {page}, {len(figures)} figures in {fig_dir} and models in {args.out} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
