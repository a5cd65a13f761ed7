"""Train the small scheme-S2 downscaler shipped in ``unique_xr/data/models/downscale_s2/`` for the demo.

``unique-xr demo`` downscales the sample region's daily 500 m GPP_M to 30 m with this model. It is
trained on the sample region itself, from what the demo's own GPP stage writes:

fine
    GPP_L (``gpp_30m.zarr``) on the two Landsat days (NaN under clouds: the loss ignores those pixels);
coarse (default ``--coarse gpp_l_average``)
    the same GPP_L averaged over the cells of the 500 m grid of ``gpp_500m.zarr``
    (:func:`unique_xr.downscale.regrid.average_onto_grid`, cells less than half valid are NaN), then
    resampled bilinearly back onto the 30 m grid with
    :func:`unique_xr.downscale.regrid.coarse_onto_grid`, exactly as the demo resamples GPP_M before
    downscaling it. ``--coarse gpp_m`` takes GPP_M itself on those days instead (UNIQUE's recipe);
aux (scheme S2)
    the data layer's 30 m DEM (``elevation``) and the fraction of each land-cover class present in
    the sample (``frac_*``), all continuous channels.

Why the default is not GPP_M itself: the sample's MODIS NBAR and meteorology are synthetic, so its
GPP_M has nothing to do with the real Landsat GPP_L (their correlation over the clear pixels of the
two days is -0.09 and -0.04). Trained on those pairs the model learns to ignore its coarse input and
the demo's "downscaled" maps come out nearly flat. Pairs whose coarse field is the fine field's own
average teach what a downscaler must do (keep the 500 m field, add 30 m detail), which the demo then
applies to GPP_M.

It is a demonstration model either way: two dates of one 12 x 9 km region, with synthetic DEM and
land cover that do not match the real Landsat scene, are far too little to learn a general
downscaler. It shows the machinery, not a scientific result.

Run it from the repository (about 80 s of training on one core, plus 20 s for the demo's cubes)::

    python examples/train_sample_downscaler.py
    python examples/train_sample_downscaler.py --out /tmp/downscale_s2 --steps 400 --coarse gpp_m
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from unique_xr.downscale import DownscaleConfig, fit
from unique_xr.downscale.regrid import average_onto_grid, coarse_onto_grid
from unique_xr.grid import GridSpec
from unique_xr.load.cache import open_zarr

REPO = Path(__file__).resolve().parents[1]

#: a small network (50 k parameters, 0.2 MB of weights): 48 px training patches, 160 px tiles
CONFIG = dict(base_channels=8, channel_mults=(1, 2), patch=48, batch_size=8, learning_rate=2e-3,
              tile=160, overlap=16, sample_steps=2, min_valid=0.3)
TRAIN_STEPS = 800


SOURCE_MD = """# Sample scheme-S2 diffusion downscaler (shipped for `unique-xr demo`)

`weights.pt` (EMA weights of a {parameters}-parameter conditional UNet, torch) and `card.json`
(configuration, normalisation, auxiliaries, training record) as written by
`unique_xr.downscale.fit`; load with
`unique_xr.downscale.load_downscaler(unique_xr.sample.sample_downscaler())`. Made by
`python examples/train_sample_downscaler.py` ({steps} steps, {seconds} s on one CPU core).

**A demonstration model, not a scientific one.** It lets the demo run the whole chain
(daily GPP_M at 500 m -> 30 m) offline. It was trained on the demo's own sample region, and the
sample's MODIS NBAR and meteorology are synthetic, so GPP_M is made up: the model shows the
machinery, it says nothing about how well diffusion downscaling works (see `docs/downscale.md`
for the evaluation on real image pairs).

## Training data

- Coarse: {coarse}, resampled bilinearly onto the 30 m grid with
  `unique_xr.downscale.regrid.coarse_onto_grid` (the demo resamples GPP_M the same way).
- Fine: GPP_L (`gpp_30m.zarr`, the shipped `gpp_l` model on the real Landsat 8 crops and the
  synthetic meteorology) on the two Landsat days 2019-01-14 and 2019-01-30, 300 x 400 pixels
  ({valid} valid pixels; clouds are NaN and ignored by the loss).
- Why not GPP_M as the coarse side (UNIQUE's recipe, `--coarse gpp_m`): the sample's GPP_M rests
  on synthetic MODIS and meteorology and is unrelated to the real Landsat GPP_L (correlation about
  -0.1), so a model trained on those pairs learns to ignore its coarse input.
- Auxiliaries (scheme S2, continuous channels): {aux} from the data layer's `static_30m` cube
  (synthetic DEM and land cover; the land-cover classes absent from the sample are left out).
- Configuration: `DownscaleConfig.preset("quick", {config})`.

## Sources, licences and attribution

The weights derive from the real Landsat 8 crops (USGS, public domain; the `xlandsat` sample
crops, CC-0; see `unique_xr/data/sample/SOURCE.md`), from the outputs of the shipped `gpp_l` and
`gpp_m` models (CC-BY-4.0, with the attributions in `../gpp_l/SOURCE.md` and `../gpp_m/SOURCE.md`:
FLUXNET2015, MODIS, Landsat 7, ERA5, FluxDataKit) and from synthetic layers. The model is
distributed under CC-BY-4.0 with those attributions.
"""


COARSE_MD = {
    "gpp_l_average": "GPP_L (below) averaged over the 500 m cells of the `gpp_500m.zarr` grid "
                     "(`unique_xr.downscale.regrid.average_onto_grid`; cells less than half valid are NaN)",
    "gpp_m": "GPP_M (`gpp_500m.zarr`, the shipped `gpp_m` LightGBM model on the synthetic MODIS NBAR and "
             "meteorology) on the same days",
}


def source_md(model, fine: list[xr.DataArray], aux: list[xr.DataArray], steps: int, seconds: float,
              coarse: str) -> str:
    config = ", ".join(f"{k}={v!r}" for k, v in {**CONFIG, "train_steps": steps}.items())
    return SOURCE_MD.format(parameters=f"{model.card['parameters']:,}", steps=steps, seconds=round(seconds),
                            valid=" + ".join(f"{int(np.isfinite(f.values).sum()):,}" for f in fine),
                            aux=", ".join(f"`{a.name}`" for a in aux), config=config, coarse=COARSE_MD[coarse])


def demo_cubes(directory: Path) -> Path:
    """Run the demo's data layer and GPP stage (no downscaling) into ``directory``; return its cube folder."""
    from unique_xr.pipeline import run_demo

    return run_demo(directory, downscale=False, progress=False).gpp.stores["gpp_30m"].parent


def aux_layers(static: xr.Dataset) -> list[xr.DataArray]:
    """The DEM and the land-cover fractions of the classes present in the sample, on the 30 m grid."""
    present = [str(v) for v in sorted(static.data_vars) if str(v).startswith("frac_") and float(static[v].max()) > 0]
    return [static["elevation"].load()] + [static[v].load() for v in present]


def training_pairs(cube: Path, coarse: str = "gpp_l_average"
                   ) -> tuple[list[xr.DataArray], list[xr.DataArray], list[xr.DataArray]]:
    """(coarse on the 30 m grid, fine, aux) from the demo's stores, one pair per Landsat day."""
    fine = open_zarr(cube / "gpp_30m.zarr")["gpp"]
    gpp_m = open_zarr(cube / "gpp_500m.zarr")["gpp"]
    grid = GridSpec.from_xarray(fine)
    days = pd.DatetimeIndex(fine["time"].values).normalize()
    if coarse == "gpp_m":
        at_500m = gpp_m.sel(time=days)
    elif coarse == "gpp_l_average":
        at_500m = average_onto_grid(fine, GridSpec.from_xarray(gpp_m))
    else:
        raise SystemExit(f"--coarse must be gpp_l_average or gpp_m, not {coarse!r}")
    on_fine = coarse_onto_grid(at_500m, grid).load()
    pairs_c = [on_fine.isel(time=i, drop=True) for i in range(days.size)]
    pairs_f = [fine.isel(time=i, drop=True).load() for i in range(days.size)]
    return pairs_c, pairs_f, aux_layers(open_zarr(cube / "static_30m.zarr"))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "unique_xr" / "data" / "models" / "downscale_s2",
                        help="model folder (default: the package's data/models/downscale_s2)")
    parser.add_argument("--cube", type=Path, default=None,
                        help="a demo cube folder to train on (default: run the demo's GPP stage in a temp folder)")
    parser.add_argument("--steps", type=int, default=TRAIN_STEPS, help="training steps")
    parser.add_argument("--coarse", choices=sorted(COARSE_MD), default="gpp_l_average",
                        help="coarse side of the training pairs (see the module docstring)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: this small network gains little from more, and loses much "
                             "when the cores are shared)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cube = args.cube or demo_cubes(Path(tmp))
        coarse, fine, aux = training_pairs(cube, args.coarse)
        config = DownscaleConfig.preset("quick", **CONFIG, train_steps=args.steps, checkpoint_every=args.steps)
        started = time.perf_counter()
        model = fit(coarse, fine, aux=aux, scheme="s2", config=config, aux_kinds=["continuous"] * len(aux))
        seconds = time.perf_counter() - started
    model.card.update({
        "made_by": "examples/train_sample_downscaler.py",
        "purpose": "demonstration model for `unique-xr demo` (synthetic MODIS and meteorology): the machinery, "
                   "not a scientific result",
        "training_data": "the demo's sample region (unique_xr/data/sample) on the Landsat days 2019-01-14 and "
                         f"2019-01-30: fine = GPP_L 30 m; coarse = {COARSE_MD[args.coarse].replace('(below) ', '')}, resampled "
                         "bilinearly onto the 30 m grid (unique_xr.downscale.regrid.coarse_onto_grid); aux = "
                         "elevation and land-cover fractions of the static_30m cube",
    })
    out = model.save(args.out)
    for name in ("checkpoint.pt", "checkpoint.json"):  # the checkpoint and its SHA-256 record
        (out / name).unlink(missing_ok=True)
    (out / "SOURCE.md").write_text(source_md(model, fine, aux, args.steps, seconds, args.coarse))
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    valid = [int(np.isfinite(f.values).sum()) for f in fine]
    print(f"downscale_s2: {len(fine)} pairs ({valid} valid fine pixels), aux {[a.name for a in aux]}, "
          f"{model.card['parameters']} parameters, {args.steps} steps in {seconds:.1f} s, final loss "
          f"{model.card['training']['final_loss']:.3f} -> {out} {json.dumps(sizes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
