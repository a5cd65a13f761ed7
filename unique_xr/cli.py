"""The ``unique-xr`` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="unique_xr: daily 30 m GPP from satellite imagery.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_output"),
                             help="Output folder (inputs/, cube/*.zarr incl. gpp_30m_daily.zarr, cube/quicklook.png, "
                                  "cube/gpp_map.png, cube/gpp_downscaled.png)."),
    seed: int = typer.Option(0, help="Seed of the synthetic layers."),
    engine: str = typer.Option("stackstac", help="Loader engine: stackstac or odc."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Run the pipeline on the embedded sample region: search -> load -> mask -> indices -> Zarr -> GPP ->
    30 m downscaling + PNGs."""
    from rich.console import Console
    from rich.table import Table

    from unique_xr.errors import UniqueXrError
    from unique_xr.pipeline import run_demo

    console = Console(width=max(Console().width, 110))
    try:
        result = run_demo(out, seed=seed, engine=engine, progress=progress)
    except UniqueXrError as err:
        _fail(err)
    layer, gpp = result.data_layer, result.gpp
    table = Table(title="Sample data: what is real and what is synthetic")
    for col in ("layer", "kind", "source"):
        table.add_column(col)
    for name, kind, source in result.staged.provenance:
        table.add_row(name, f"[green]{kind}[/]" if kind == "real" else f"[yellow]{kind}[/]", source)
    console.print(table)
    for name, path in layer.stores.items():
        console.print(f"[bold]{name}[/]: {path}  {layer.summary['cubes'][name]}")
    if layer.quicklook:
        console.print(f"quicklook: {layer.quicklook}")
    for name, path in gpp.stores.items():
        s = gpp.summary[name]
        console.print(f"[bold]{name}[/]: {path}  {s['sizes']}  GPP {s['min']:.2f} to {s['max']:.2f} g C m-2 d-1 "
                      f"(mean {s['mean']:.2f}, {100 * s['valid_fraction']:.0f} % of pixel-days estimated)")
        if s["inputs_absent"] != "none":
            console.print(f"  [yellow]inputs absent from the sample, treated as missing:[/] {s['inputs_absent']}")
    if gpp.gpp_map:
        console.print(f"GPP map: {gpp.gpp_map}")
    down = result.downscaled
    if down is not None:
        s = down.summary
        console.print(f"[bold]gpp_30m_daily[/]: {down.store}  {s['sizes']}  GPP_M downscaled to 30 m "
                      f"(diffusion model {s['model_token']}, {s['members']} members, {s['steps']} DDIM steps): "
                      f"{s['min']:.2f} to {s['max']:.2f} g C m-2 d-1 (mean {s['mean']:.2f}, mean spread "
                      f"{s.get('spread_mean', float('nan')):.2f}, {100 * s['valid_fraction']:.0f} % of pixel-days)")
        if down.figure:
            console.print(f"downscaled GPP map: {down.figure}")
    else:
        console.print("[yellow]downscaling skipped: torch is not installed (pip install torch==2.13.0, then the "
                      "extra: pip install -e \".[torch]\").[/]")
    console.print("[yellow]The sample's MODIS and meteorology are synthetic: the GPP shows the machinery, "
                  "not a validated product.[/]")
    steps = [("data layer", layer.summary["total_seconds"]), ("GPP", gpp.summary["total_seconds"])]
    if down is not None:
        steps.append(("downscaling", down.summary["total_seconds"]))
    total = sum(seconds for _, seconds in steps)
    console.print(f"done in {total:.1f} s (graph built in {layer.summary['graph_seconds']} s; "
                  + "; ".join(f"{name} {seconds} s" for name, seconds in steps) + ")")


@app.command()
def collections() -> None:
    """List the collections unique_xr knows, with their ids per provider."""
    from unique_xr.search.collections import COLLECTIONS

    for name, spec in COLLECTIONS.items():
        ids = ", ".join(f"{p}: {i}" for p, i in spec.ids.items())
        typer.echo(f"{name:16s} {spec.cadence:8s} {spec.resolution:>6.0f} m  {ids}")


@app.command("search")
def search_cmd(
    collection: str = typer.Argument(..., help="Registry name or provider id, e.g. mcd43a4 or landsat-c2-l2."),
    bbox: str = typer.Option(..., help="west,south,east,north in degrees."),
    datetime: str = typer.Option(..., help="start/end, e.g. 2023-06-01/2023-06-30."),
    provider: str = typer.Option("planetary-computer", help="planetary-computer, earth-search, a URL or a local catalog."),
    out: Optional[Path] = typer.Option(None, help="Write the ItemCollection JSON here."),
) -> None:
    """Search a STAC API or local catalog and print the item ids."""
    from unique_xr.errors import UniqueXrError
    from unique_xr.search.stac import search

    try:
        box = tuple(float(v) for v in bbox.split(","))
        items = search(collection, bbox=box, datetime=datetime, provider=provider)
    except (UniqueXrError, ValueError) as err:
        _fail(err)
    for item in items:
        typer.echo(item.id)
    if out:
        out.write_text(json.dumps(items.to_dict()))
        typer.echo(f"wrote {len(items)} items to {out}")



@app.command()
def train(
    table: Path = typer.Option(..., exists=True, dir_okay=False, help="Tower table (csv, csv.gz, parquet): site, date, inputs, target."),
    target: str = typer.Option(..., help="Column of observed daily GPP in g C m-2 d-1, e.g. gpp_obs."),
    out: Path = typer.Option(..., help="Model directory to write (model.txt, model_card.json, cv_scores.csv, cv_predictions.csv.gz)."),
    model: str = typer.Option("gpp_m", help="gpp_m (daily MODIS NBAR table) or gpp_l (Landsat table joined with GPP)."),
    folds: int = typer.Option(20, help="Outer cross-validation folds (site-grouped); 0 skips cross-validation."),
    fold_scheme: str = typer.Option("site", help="site (site-grouped K-fold) or block (lat/lon blocks held out)."),
    seed: int = typer.Option(0, help="Seed of folds, bagging and inner splits."),
    params: Optional[str] = typer.Option(None, help='LightGBM parameters as JSON, e.g. \'{"num_leaves": 63}\'.'),
    early_stopping: int = typer.Option(100, help="Early-stopping patience on an inner site-grouped split (0: off)."),
    max_trees: int = typer.Option(1000, help="Most boosting rounds."),
    baselines: bool = typer.Option(True, help="Score linear-VI, light-use-efficiency and P-model baselines in the same folds."),
    threads: Optional[int] = typer.Option(None, help="LightGBM threads (default 1; tower tables are small)."),
) -> None:
    """Train GPP_M or GPP_L on a tower table, with site-grouped cross-validation; print and save the report."""
    from rich.console import Console

    from unique_xr.errors import UniqueXrError
    from unique_xr.models.lgbm import TrainConfig
    from unique_xr.models.lgbm import train as train_model
    from unique_xr.models.report import print_report

    console = Console(width=max(Console().width, 110))
    try:
        config = TrainConfig(
            kind=model, target=target, folds=folds, fold_scheme=fold_scheme, seed=seed,
            params=json.loads(params) if params else {}, early_stopping_rounds=early_stopping,
            num_boost_round=max_trees, baselines=baselines, n_jobs=threads,
        )
        with console.status("cross-validating") as status:
            result = train_model(table, config, progress=lambda k, n: status.update(f"fold {k}/{n} done"))
        result.save(out)
    except (UniqueXrError, ValueError, FileNotFoundError) as err:
        _fail(err)
    print_report(result, console=console)
    console.print(f"model written to [bold]{out}[/] in {result.seconds} s")


@app.command()
def predict(
    model: Path = typer.Option(..., exists=True, file_okay=False, help="Model directory written by `unique-xr train`."),
    table: Path = typer.Option(..., exists=True, dir_okay=False, help="Table of the training layout (may hold unseen sites)."),
    out: Path = typer.Option(..., help="CSV to write: site, date, gpp (g m-2 d-1)."),
    allow_missing: Optional[list[str]] = typer.Option(None, help="Model input knowingly absent (becomes NaN); repeatable."),
) -> None:
    """Predict daily GPP for every row of a table with a trained model."""
    from unique_xr.errors import UniqueXrError
    from unique_xr.models.lgbm import load_model

    try:
        gpp = load_model(model).predict(table, allow_missing=tuple(allow_missing or ()))
    except (UniqueXrError, ValueError, FileNotFoundError) as err:
        _fail(err)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    gpp.to_csv(tmp, index=False, float_format="%.4f")
    tmp.replace(out)
    n = int(gpp["gpp"].notna().sum())
    typer.echo(f"{out}: {len(gpp)} rows, {n} with GPP ({len(gpp) - n} NaN where the surface reflectance is missing)")


@app.command("join-landsat")
def join_landsat(
    landsat: Path = typer.Option(..., exists=True, dir_okay=False, help="Landsat C2 L2 values at towers (site, date, SR_B*, ST_B*, QA_PIXEL)."),
    daily: Path = typer.Option(..., exists=True, dir_okay=False, help="Daily tower table with GPP and meteorology."),
    out: Path = typer.Option(..., help="CSV (.csv.gz) to write: the GPP_L training table."),
) -> None:
    """Join Landsat observations at towers with the towers' daily GPP: the table `train --model gpp_l` takes."""
    from unique_xr.errors import UniqueXrError
    from unique_xr.towers import landsat_training_table

    try:
        joined = landsat_training_table(landsat, daily)
    except (UniqueXrError, ValueError) as err:
        _fail(err)
    joined.to_csv(out, index=False)
    typer.echo(f"{out}: {len(joined)} Landsat rows on {joined['site'].nunique()} sites")


# --- downscale ------------------------------------------------------------------------------------
from typing import Literal  # noqa: E402

from typer.core import TyperCommand  # noqa: E402


class _ValuesAfterOneFlag(TyperCommand):
    """Lets a repeatable option take several values after one flag: ``--coarse a.tif b.tif``.

    Click gives one value per flag; this rewrites ``--coarse a b`` into ``--coarse a --coarse b``
    for every ``multiple`` option before parsing, so both spellings work.
    """

    def parse_args(self, ctx, args):
        multi = {opt for p in self.params if getattr(p, "multiple", False) for opt in getattr(p, "opts", ())}
        out, current, value_next = [], None, False
        for i, tok in enumerate(args):
            if tok == "--":
                out.extend(args[i:])
                break
            if value_next:
                out.append(tok)
                value_next = False
            elif tok.startswith("-") and len(tok) > 1:
                flag, eq, _ = tok.partition("=")
                current = flag if flag in multi else None
                value_next = current is not None and not eq
                out.append(tok)
            elif current is not None:
                out.extend([current, tok])
            else:
                out.append(tok)
        return super().parse_args(ctx, out)


downscale_app = typer.Typer(help="Diffusion downscaling of single-band GeoTIFFs: fit on coarse/fine pairs, predict.",
                            no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(downscale_app, name="downscale")


@downscale_app.command("fit", cls=_ValuesAfterOneFlag)
def downscale_fit(
    coarse: list[Path] = typer.Option(
        ..., metavar="PATH...",
        help="Coarse single-band GeoTIFFs, one per pair: on their own grid (nested or not) or on the fine grid."),
    fine: list[Path] = typer.Option(
        ..., metavar="PATH...",
        help="Fine single-band GeoTIFFs of the same variable, one per coarse file, all on one grid; "
             "NaN/nodata pixels are left out of training."),
    aux: Optional[list[Path]] = typer.Option(
        None, metavar="PATH...",
        help="Scheme s2: auxiliary layers on the fine grid (a DEM, a land-cover map; integer maps with few "
             "values become one channel per class)."),
    scheme: Literal["s1", "s2"] = typer.Option(..., help="s1: coarse only; s2: coarse + auxiliaries."),
    out: Path = typer.Option(..., help="Model folder to write (weights.pt, card.json, checkpoint.pt)."),
    texture: bool = typer.Option(
        False, "--texture",
        help="Scheme s2: also condition on the texture of the fine files (their mean sub-coarse anomaly; "
             "leave-one-out while fitting), written to MODEL_DIR/texture.tif and used by predict and calibrate "
             "without an --aux entry. Needs coarse files on a grid nested in the fine one."),
    preset: Literal["quick", "cpu", "large"] = typer.Option(
        "cpu", help="Model size and schedule: quick (tests), cpu, large (GPU)."),
    steps: Optional[int] = typer.Option(None, help="Training steps (overrides the preset's)."),
    device: Literal["cpu", "cuda", "auto"] = typer.Option("cpu", help="Where to train."),
    precision: Literal["auto", "bf16", "fp32"] = typer.Option("auto", help="auto: bf16 autocast on CUDA, fp32 on CPU."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt (same inputs and options)."),
    seed: Optional[int] = typer.Option(None, help="Seed of patch order, augmentation and noise (default: preset's)."),
    band: Optional[int] = typer.Option(
        None, help="Band (1-based) to read from multi-band coarse/fine files (single-band files are read as is)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train a downscaler on coarse/fine GeoTIFF pairs (coarse i pairs with fine i) and write MODEL_DIR."""
    import time

    from unique_xr.errors import UniqueXrError

    started = time.perf_counter()
    try:
        model = _fit_from_files(coarse, fine, aux or [], scheme=scheme, out=out, preset=preset, steps=steps,
                                device=device, precision=precision, resume=resume, seed=seed, band=band,
                                progress=progress, texture=texture)
    except (UniqueXrError, ValueError) as err:
        _fail(err)
    card = model.card
    training = card.get("training", {})
    typer.echo(f"{out}: scheme {model.scheme}, {card['pairs']} pair(s), factor {card['factor']}, "
               f"{training.get('patches')} patches, {training.get('steps')} steps, final loss "
               f"{training.get('final_loss', float('nan')):.4f}, {time.perf_counter() - started:.1f} s")
    for kind, how in zip(card["inputs"]["coarse"], card["inputs"]["alignment"]):
        typer.echo(f"  {kind}: {how}")


def _read_band(path, band):
    """``--band`` picks a band of multi-band files; single-band files are read as they are."""
    from unique_xr.downscale.io import band_count, read_single_band

    return read_single_band(path, band=band if band is not None and band_count(path) > 1 else None)


def _fit_from_files(coarse, fine, aux, *, scheme, out, preset, steps, device, precision, resume, seed, band,
                    progress, texture=False):
    from unique_xr.downscale import DownscaleConfig, fit
    from unique_xr.downscale.conditioning import DownscaleInputError
    from unique_xr.downscale.io import align_coarse, common_grid, grid_record, read_single_band, write_prediction
    from unique_xr.downscale.texture import texture_prior

    if texture and scheme != "s2":
        raise DownscaleInputError("--texture adds an auxiliary layer, so it needs --scheme s2.")
    if scheme == "s2" and not aux and not texture:
        raise DownscaleInputError("Scheme s2 conditions on auxiliary layers: add --aux DEM.tif LANDCOVER.tif ... "
                                  "(on the fine grid) or --texture, or use --scheme s1.")
    if scheme == "s1" and aux:
        raise DownscaleInputError(f"Scheme s1 conditions on the coarse field only, but {len(aux)} --aux file(s) were "
                                  "given: drop --aux or use --scheme s2.")
    if len(coarse) != len(fine):
        raise DownscaleInputError(f"fit pairs coarse i with fine i, so it needs as many --coarse as --fine files; "
                                  f"got {len(coarse)} coarse and {len(fine)} fine.")
    overrides = {k: v for k, v in (("train_steps", steps), ("seed", seed)) if v is not None}
    config = DownscaleConfig.preset(preset, **overrides)
    fine_da = [_read_band(p, band) for p in fine]
    grid = common_grid(fine_da, "--fine")
    aux_da = [read_single_band(p) for p in aux]
    grid = common_grid([*fine_da, *aux_da], "--fine and --aux") if aux_da else grid
    aligned = [align_coarse(_read_band(p, band), grid) for p in coarse]
    inputs = {
        "coarse": [str(p) for p in coarse], "fine": [str(p) for p in fine], "aux": [str(p) for p in aux],
        "band": band, "factors": [k for _, k in aligned], "alignment": [a.attrs["alignment"] for a, _ in aligned],
        "fine_grid": grid_record(grid),
    }
    prior = None
    if texture:
        factors = {k for _, k in aligned}
        if len(factors) != 1 or factors == {1}:
            raise DownscaleInputError(
                f"--texture needs coarse files on one grid nested in the fine grid (a whole factor > 1); the coarse "
                f"files came out at factor(s) {sorted(factors)}. Drop --texture, or give coarse files on their own "
                "coarser grid.")
        if len(fine_da) < 2:
            raise DownscaleInputError("--texture needs at least two pairs: each pair is fitted with the texture of "
                                      "the others.")
        (k,) = factors
        aux_da = [*aux_da, texture_prior(fine_da, k, leave_one_out=True)]
        prior = texture_prior(fine_da, k)
        inputs["texture"] = TEXTURE_FILE
    model = fit([a for a, _ in aligned], fine_da, aux=aux_da, scheme=scheme, config=config, out=out, device=device,
                precision=precision, resume=resume, progress=progress, card={"inputs": inputs})
    if prior is not None:
        write_prediction(prior.to_dataset(), Path(out) / TEXTURE_FILE, grid, tags={"content": prior.attrs["long_name"]})
    return model


#: The texture layer ``fit --texture`` writes into the model folder.
TEXTURE_FILE = "texture.tif"


def _model_aux(model, model_dir, aux_da, what: str):
    """The user's auxiliaries plus, for a ``fit --texture`` model, the texture layer of its folder."""
    from unique_xr.downscale.conditioning import DownscaleInputError
    from unique_xr.downscale.io import read_single_band

    stored = model.card.get("inputs", {}).get("texture")
    own = len(model.norm.aux) - (1 if stored else 0)
    if len(aux_da) != own:
        names = [a.name for a in model.norm.aux][:own]
        extra = f" (the texture layer is read from {Path(model_dir) / stored})" if stored else ""
        raise DownscaleInputError(f"The model (scheme {model.scheme}) was trained with {own} auxiliary layer(s) "
                                  f"{names}{extra}; got {len(aux_da)} {what} file(s). Pass the same layers in the "
                                  "same order.")
    if not stored:
        return aux_da
    path = Path(model_dir) / stored
    if not path.exists():
        raise DownscaleInputError(f"The model was fitted with --texture but {path} is missing: copy the whole model "
                                  "folder, or fit again.")
    return [*aux_da, read_single_band(path, name="texture")]


@downscale_app.command("predict", cls=_ValuesAfterOneFlag)
def downscale_predict(
    model: Path = typer.Option(..., help="Model folder written by `unique-xr downscale fit`."),
    coarse: Path = typer.Option(..., help="Coarse single-band GeoTIFF to downscale."),
    out: Path = typer.Option(
        ..., help="GeoTIFF to write on the fine grid (float32, nodata NaN): band 1 the ensemble mean; with "
                  "--members > 1 also the spread and the lower and upper bounds of the 90 % interval."),
    aux: Optional[list[Path]] = typer.Option(
        None, metavar="PATH...",
        help="Scheme s2: the model's auxiliary layers, in the order of fit; their grid is the output grid."),
    members: int = typer.Option(1, min=1, help="Ensemble members."),
    steps: Optional[int] = typer.Option(None, help="Sampling steps (default: the model's)."),
    sampler: Optional[Literal["ddim", "ddpm"]] = typer.Option(None, help="Sampler (default: the model's)."),
    seed: int = typer.Option(0, help="Noise seed."),
    tile: Optional[int] = typer.Option(None, help="Tile side in fine pixels (default: the model's)."),
    overlap: Optional[int] = typer.Option(None, help="Tile overlap in fine pixels (default: the model's)."),
    conserve: bool = typer.Option(
        False, "--conserve", help="Make each coarse cell's mean equal the coarse value (coarse on a nested grid)."),
    device: Literal["cpu", "cuda", "auto"] = typer.Option("cpu", help="Where to run."),
    precision: Literal["auto", "bf16", "fp32"] = typer.Option("auto", help="auto: bf16 autocast on CUDA, fp32 on CPU."),
    band: Optional[int] = typer.Option(None, help="Band (1-based) to read from a multi-band coarse file."),
    like: Optional[Path] = typer.Option(
        None, help="Without --aux: a raster on the output grid (default: the coarse area at the training pixel size)."),
    factor: Optional[int] = typer.Option(
        None, help="Without --aux or --like: output pixels per coarse pixel along each axis (default: the model's)."),
) -> None:
    """Downscale one coarse GeoTIFF with a fitted model and write the fine-grid GeoTIFF."""
    from unique_xr.errors import UniqueXrError

    try:
        grid, ds = _predict_from_files(model, coarse, aux or [], out=out, members=members, steps=steps,
                                       sampler=sampler, seed=seed, tile=tile, overlap=overlap, conserve=conserve,
                                       device=device, precision=precision, band=band, like=like, factor=factor)
    except (UniqueXrError, ValueError) as err:
        _fail(err)
    import numpy as np

    mean = ds[next(iter(ds.data_vars))].values
    typer.echo(f"{out}: {grid.shape[0]} x {grid.shape[1]} px, {len(ds.data_vars)} band(s) "
               f"({', '.join(ds.data_vars)}), {100 * float(np.isfinite(mean).mean()):.1f} % valid, "
               f"{ds.attrs.get('downscaling_alignment')}")


def _predict_from_files(model_dir, coarse, aux, *, out, members, steps, sampler, seed, tile, overlap, conserve,
                        device, precision, band, like, factor):
    from unique_xr.downscale import downscale, load_downscaler
    from unique_xr.downscale.conditioning import DownscaleInputError
    from unique_xr.downscale.io import (
        align_coarse,
        common_grid,
        prediction_grid,
        read_grid,
        read_single_band,
        write_prediction,
    )

    if like is not None and factor is not None:
        raise DownscaleInputError("--like sets the output grid, --factor derives it from the coarse grid: give one.")
    model = load_downscaler(model_dir)
    coarse_da = _read_band(coarse, band)
    aux_da = _model_aux(model, model_dir, [read_single_band(p) for p in aux], "--aux")
    if aux_da and (like is not None or factor is not None):
        raise DownscaleInputError("With auxiliaries (--aux, or a model's texture layer) the output grid is theirs; "
                                  "drop --like/--factor.")
    if aux_da:
        grid = common_grid(aux_da, "--aux")
    elif like is not None:
        grid = read_grid(like)
    else:
        inputs = model.card.get("inputs", {})
        grid = prediction_grid(coarse_da, factor=factor, trained_factor=model.card.get("factor", 1),
                               trained_grid=inputs.get("fine_grid"))
    aligned, k = align_coarse(coarse_da, grid)
    ds = downscale(aligned, model, aux=aux_da, factor=k, members=members, steps=steps, sampler=sampler, seed=seed,
                   tile=tile, overlap=overlap, conserve=conserve, device=device, precision=precision)
    ds.attrs["downscaling_alignment"] = aligned.attrs["alignment"]
    tags = {"source_coarse": str(coarse), "source_model": str(model_dir), "seed": seed,
            "sampler": sampler or model.config.sampler, "steps": steps or model.config.sample_steps}
    write_prediction(ds, out, grid, tags=tags)
    return grid, ds



@downscale_app.command("calibrate", cls=_ValuesAfterOneFlag)
def downscale_calibrate(
    model: Path = typer.Option(..., help="Model folder written by `unique-xr downscale fit`."),
    coarse: list[Path] = typer.Option(..., metavar="PATH...",
                                      help="Coarse GeoTIFFs of dates the model was NOT trained on, one per pair."),
    fine: list[Path] = typer.Option(..., metavar="PATH...",
                                    help="Fine GeoTIFFs of the same dates (the truth; NaN/nodata left out)."),
    aux: Optional[list[Path]] = typer.Option(None, metavar="PATH...", help="Scheme s2: the model's auxiliary layers."),
    out: Optional[Path] = typer.Option(None, help="Folder for the calibrated model (default: MODEL, rewritten)."),
    members: int = typer.Option(8, min=2, help="Ensemble members: use the count you will predict with."),
    steps: Optional[int] = typer.Option(None, help="Sampling steps (default: the model's)."),
    sampler: Optional[Literal["ddim", "ddpm"]] = typer.Option(None, help="Sampler (default: the model's)."),
    seed: int = typer.Option(0, help="Noise seed."),
    device: Literal["cpu", "cuda", "auto"] = typer.Option("cpu", help="Where to run."),
    band: Optional[int] = typer.Option(None, help="Band (1-based) to read from multi-band coarse/fine files."),
) -> None:
    """Calibrate the 90 % interval of `predict --members N` on held-out pairs (conformal scale of the spread)."""
    from unique_xr.downscale import load_downscaler
    from unique_xr.downscale.calibration import calibrate
    from unique_xr.downscale.conditioning import DownscaleInputError
    from unique_xr.downscale.io import align_coarse, common_grid, read_single_band
    from unique_xr.errors import UniqueXrError

    try:
        if len(coarse) != len(fine):
            raise DownscaleInputError(f"calibrate pairs coarse i with fine i; got {len(coarse)} coarse and "
                                      f"{len(fine)} fine files.")
        fitted = load_downscaler(model)
        fine_da = [_read_band(p, band) for p in fine]
        aux_da = _model_aux(fitted, model, [read_single_band(p) for p in aux or []], "--aux")
        grid = common_grid([*fine_da, *aux_da], "--fine and --aux")
        aligned = [align_coarse(_read_band(p, band), grid) for p in coarse]
        factors = {k for _, k in aligned}
        if len(factors) > 1:
            raise DownscaleInputError(f"The coarse files sit on different grids (factors {sorted(factors)}); "
                                      "calibrate them in separate runs.")
        calibrate(fitted, [a for a, _ in aligned], fine_da, aux=aux_da, factor=factors.pop(), members=members,
                  steps=steps, sampler=sampler, seed=seed, device=device, out=out or model)
    except (UniqueXrError, ValueError) as err:
        _fail(err)
    info = fitted.interval
    typer.echo(f"{out or model}: 90 % interval = mean +- {info['scale']:.3f} x spread ({info['pixels']} pixels of "
               f"{info['pairs']} pair(s), {members} members); the uncalibrated interval covered "
               f"{100 * info['coverage_uncalibrated']:.1f} %")

# --- cnn ------------------------------------------------------------------------------------------
cnn_app = typer.Typer(help="Gap-tolerant CNN for annual forest GPP and NEE from tower tables (MetaFlux monthly layout).",
                      no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(cnn_app, name="cnn")

_TABLE_HELP = ("Multi-site table laid out like the MetaFlux monthly FLUXNET2015 table (TIMESTAMP YYYYMM, Site, Lat, "
               "PFT, LAI, EVI, LE_CORR, TA_ERA, TA_ERA_DAY, P_ERA, GPP_NT_VUT_REF, NEE_VUT_REF); forest rows are used.")


def _cnn_config(epochs, members, seed, threads, occlusion=True):
    from unique_xr.models.cnn.model import CnnConfig

    base = CnnConfig()
    return CnnConfig(epochs=epochs or base.epochs, members=members or base.members, seed=seed, threads=threads,
                     occlusion=base.occlusion if occlusion else None)


@cnn_app.command("train")
def cnn_train(
    table: Path = typer.Option(..., help=_TABLE_HELP),
    out: Path = typer.Option(..., help="Model folder to write (weights.pt, card.json)."),
    time_step: Literal["monthly", "16-day", "8-day"] = typer.Option(
        "monthly", help="Rows of the feature map; 16-day and 8-day need a daily table."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs (default: the shipped configuration's)."),
    members: Optional[int] = typer.Option(None, help="Networks in the ensemble (default: the shipped configuration's)."),
    seed: int = typer.Option(0, help="Seed of weights, shuffling and occlusions."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
    occlusion: bool = typer.Option(True, help="Train with occlusions (--no-occlusion: an ablation)."),
    min_quality: float = typer.Option(0.5, help="Least mean NEE quality flag of a training site-year."),
    progress: bool = typer.Option(True, help="Print a line per ensemble member."),
) -> None:
    """Train the annual GPP/NEE CNN on every usable forest site-year of TABLE and write MODEL_DIR."""
    import time

    from unique_xr.errors import UniqueXrError
    from unique_xr.models.cnn.featuremap import MapSpec
    from unique_xr.models.cnn.run import train_from_table

    started = time.perf_counter()
    try:
        model = train_from_table(table, out, config=_cnn_config(epochs, members, seed, threads, occlusion),
                                 spec=MapSpec(time_step=time_step), min_quality=min_quality, progress=progress)
    except (UniqueXrError, ValueError, FileNotFoundError) as err:
        _fail(err)
    tr = model.card["training"]
    typer.echo(f"{out}: {tr['site_years']} forest site-years on {len(tr['sites'])} sites "
               f"({', '.join(f'{k} {v}' for k, v in tr['site_years_by_type'].items())}); "
               f"{tr['excluded_site_years']} site-years without a usable annual sum left out; "
               f"{100 * tr['missing_fraction']:.1f} % of input cells missing; model {model.token}; "
               f"{time.perf_counter() - started:.1f} s")


@cnn_app.command("predict")
def cnn_predict(
    model: Path = typer.Option(..., help="Model folder written by `unique-xr cnn train`."),
    table: Path = typer.Option(..., help=_TABLE_HELP + " Targets are not needed; NaN input cells are fine."),
    out: Path = typer.Option(..., help="CSV to write: site, year, gpp, nee (annual sums, g C m-2 yr-1; NEE < 0 is "
                                       "uptake), one row per forest site-year of TABLE."),
) -> None:
    """Annual GPP and NEE for every forest site-year of TABLE, including unseen sites and gappy inputs."""
    from unique_xr.errors import UniqueXrError
    from unique_xr.models.cnn.model import load_cnn
    from unique_xr.models.cnn.run import predict_table, write_csv

    try:
        frame = predict_table(load_cnn(model), table)
    except (UniqueXrError, ValueError, FileNotFoundError) as err:
        _fail(err)
    write_csv(frame, out)
    typer.echo(f"{out}: {len(frame)} forest site-years on {frame['site'].nunique()} sites; GPP "
               f"{frame['gpp'].min():.0f} to {frame['gpp'].max():.0f}, NEE {frame['nee'].min():.0f} to "
               f"{frame['nee'].max():.0f} g C m-2 yr-1")


@cnn_app.command("evaluate", cls=_ValuesAfterOneFlag)
def cnn_evaluate(
    table: Path = typer.Option(..., help=_TABLE_HELP),
    out: Path = typer.Option(..., help="Folder for skill.csv, predictions.csv, summary.json and figures."),
    model: Optional[Path] = typer.Option(
        None, help="Score this trained model on TABLE's usable site-years instead of cross-validating."),
    folds: int = typer.Option(10, help="Site-grouped folds of the cross-validation."),
    missing: list[float] = typer.Option([0.0, 0.1, 0.3, 0.5], metavar="SHARE...",
                                        help="Shares of observed input cells hidden at random in the test maps."),
    models: list[str] = typer.Option(["cnn", "rf", "svr", "lgbm"], metavar="NAME...",
                                     help="Models to compare: cnn, rf, svr, lgbm; cnn_plain is the CNN trained without occlusions."),
    epochs: Optional[int] = typer.Option(None, help="CNN training epochs per fold."),
    members: Optional[int] = typer.Option(None, help="CNN ensemble members per fold."),
    seed: int = typer.Option(0, help="Seed of folds, models and hidden cells."),
    threads: Optional[int] = typer.Option(None, help="CPU threads of the models."),
    figures: bool = typer.Option(True, help="Also draw the skill-vs-missingness figure."),
    progress: bool = typer.Option(True, help="Print a line per fold."),
) -> None:
    """Cross-validate the CNN against random forest, SVR and LightGBM in the same site-grouped folds, at
    several shares of missing inputs (or score one trained model with --model)."""
    from unique_xr.errors import UniqueXrError
    from unique_xr.models.cnn.run import load_training_set, score_model, write_csv

    try:
        if model is not None:
            from unique_xr.models.cnn.model import load_cnn

            skill = score_model(load_cnn(model), table, missing=missing, seed=seed)
            write_csv(skill, out / "skill.csv")
            typer.echo(skill.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            return
        from unique_xr.models.cnn.compare import compare_models, missingness_figure

        maps, targets, _ = load_training_set(table)
        result = compare_models(maps, targets, n_folds=folds, missing=tuple(missing), models=tuple(models),
                                config=_cnn_config(epochs, members, seed, threads), seed=seed, threads=threads,
                                progress=progress)
    except (UniqueXrError, ValueError, FileNotFoundError) as err:
        _fail(err)
    result.to_files(out)
    if figures:
        missingness_figure(result.skill, out / "missingness.png", natural_missing=result.meta["natural_missing"])
    for share in missing:
        typer.echo(f"\n{100 * share:.0f} % of input cells hidden\n{result.table(missing=share)}")
    typer.echo(f"\nwritten to {out}")


if __name__ == "__main__":  # pragma: no cover
    app()
