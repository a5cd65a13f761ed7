"""The embedded sample region: real data where a real, openly licensed source exists, synthetic
layers where none does (made once by the seeded generator and shipped, ``data/sample/synthetic/``).

:func:`stage_sample` lays the sample out as a local STAC catalog (one ItemCollection JSON with
absolute hrefs) that :func:`unique_xr.search` reads like any STAC API, so the demo goes through
exactly the code a user with internet access runs against Planetary Computer.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from unique_xr._files import write_atomic
from unique_xr.grid import GridSpec

__all__ = ["SAMPLE_GRID", "SAMPLE_DATES", "SAMPLE_MISSING_INPUTS", "StagedSample", "sample_downscaler", "sample_model",
           "stage_sample"]

#: The real Landsat crops' own grid (scene 218074, USGS UTM 23N with negative northings).
SAMPLE_GRID = GridSpec(crs="EPSG:32623", resolution=30.0, bounds=(583485.0, -2231685.0, 595485.0, -2222685.0))
SAMPLE_DATES = ("2019-01-14", "2019-01-30")

#: Model inputs the sample cubes do not have, per model kind: the Landsat crops ship no thermal
#: band, and the data layer loads MCD43A4 bands 1, 2, 3, 6 only and no MODIS LST. The demo passes
#: them to ``ds.gpp.estimate(..., allow_missing=...)`` and the shipped sample models were trained
#: with these inputs withheld (``examples/train_sample_models.py``), so the trees never split on them.
SAMPLE_MISSING_INPUTS: dict[str, tuple[str, ...]] = {
    "gpp_l": ("landsat_st",),
    "gpp_m": ("nbar_green", "nbar_nir2", "nbar_swir2", "lst_day_terra", "lst_day_aqua"),
}


@dataclass(frozen=True)
class StagedSample:
    """Where :func:`stage_sample` put things, and what is real and what is synthetic."""

    catalog: Path
    grid: GridSpec
    dates: tuple[str, str]
    met_path: Path
    provenance: tuple[tuple[str, str, str], ...]  # (layer, "real"/"synthetic", source)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        return self.grid.bounds_latlon


def _sample_dir() -> Path:
    return Path(str(resources.files("unique_xr") / "data" / "sample"))


def sample_model(kind: str) -> Path:
    """The directory of a small pretrained model shipped with the package (no network needed).

    Parameters
    ----------
    kind
        ``"gpp_l"`` (Landsat, 30 m) or ``"gpp_m"`` (daily MODIS NBAR, 500 m).

    Returns
    -------
    pathlib.Path
        A model directory for :func:`unique_xr.load_model`. Its ``SOURCE.md`` says what the model was
        trained on (real tower data, with the inputs in :data:`SAMPLE_MISSING_INPUTS` withheld) and
        under which licences; ``examples/train_sample_models.py`` rebuilds it.

    Examples
    --------
    >>> import unique_xr
    >>> unique_xr.load_model(sample_model("gpp_l")).card.kind
    'gpp_l'
    """
    from unique_xr.errors import SpecError

    if kind not in SAMPLE_MISSING_INPUTS:
        raise SpecError(f"No sample model of kind {kind!r}; the package ships {sorted(SAMPLE_MISSING_INPUTS)}.")
    path = Path(str(resources.files("unique_xr") / "data" / "models" / kind))
    if not (path / "model.txt").is_file():
        raise FileNotFoundError(
            f"The shipped {kind} model is missing from {path}: the installation is incomplete. Reinstall "
            "unique_xr, or rebuild it with `python examples/train_sample_models.py` in a clone."
        )
    return path


def sample_downscaler() -> Path:
    """The folder of the small scheme-S2 diffusion downscaler shipped for the demo (no network needed).

    Returns
    -------
    pathlib.Path
        A model folder (``card.json``, ``weights.pt``) for :func:`unique_xr.downscale.load_downscaler`
        (extra ``torch``). It was trained on the sample region itself (GPP_L averaged over the 500 m cells ->
        GPP_L 30 m on the two Landsat days, with the DEM and land-cover fractions; the sample's GPP_M
        comes from synthetic MODIS and is unrelated to GPP_L): a demonstration of the machinery,
        not a general model. Its ``SOURCE.md`` says more; ``examples/train_sample_downscaler.py``
        rebuilds it.

    Examples
    --------
    >>> (sample_downscaler() / "card.json").is_file()
    True
    """
    path = Path(str(resources.files("unique_xr") / "data" / "models" / "downscale_s2"))
    if not (path / "card.json").is_file() or not (path / "weights.pt").is_file():
        raise FileNotFoundError(
            f"The shipped downscaling model is missing from {path}: the installation is incomplete. Reinstall "
            "unique_xr, or rebuild it with `python examples/train_sample_downscaler.py` in a clone."
        )
    return path


def stage_sample(directory: str | Path, *, seed: int = 0) -> StagedSample:
    """Copy the shipped sample data to ``directory`` and write a local catalog.

    The real Landsat crops go to ``directory/landsat_real/``, the shipped synthetic layers (Landsat
    ``qa_pixel``, MODIS MCD43A4 NBAR + QA, DEM, land cover, meteorology) to ``directory/synthetic/``,
    and ``directory/catalog.json`` lists every item with absolute hrefs.

    Parameters
    ----------
    directory
        Output folder; ``catalog.json`` (an ItemCollection of every item, absolute hrefs) goes there.
    seed
        Kept for compatibility; it no longer changes the staged layers. The sample is fixed: the
        synthetic layers of seed 0 were generated once (``examples/make_sample_synthetic.py``, with
        :mod:`unique_xr.testing.synthetic`) and ship in ``unique_xr/data/sample/synthetic/``. The
        demo's own ``seed`` still seeds the downscaler.

    Returns
    -------
    StagedSample
        The catalog, grid, dates and meteorology file, and what is real and what is synthetic.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     staged = stage_sample(tmp)
    ...     print(staged.catalog.name, staged.met_path.name, staged.met_path.is_file())
    catalog.json era5_land_daily_20190114_20190130.nc True
    """
    del seed  # the shipped layers are those of seed 0
    directory = Path(directory).resolve()
    real_dir = directory / "landsat_real"
    real_dir.mkdir(parents=True, exist_ok=True)
    src = _sample_dir() / "landsat"
    for f in src.iterdir():
        if f.suffix in (".tif", ".txt"):
            shutil.copy2(f, real_dir / f.name)
    real_items = json.loads((src / "items.json").read_text())["features"]

    shipped = _sample_dir() / "synthetic"
    if not (shipped / "items.json").is_file():
        raise FileNotFoundError(
            f"The sample's synthetic layers are missing from {shipped}: the installation is incomplete. Reinstall "
            "unique_xr, or rebuild them with `python examples/make_sample_synthetic.py` in a clone."
        )
    synthetic_dir = directory / "synthetic"
    shutil.copytree(shipped, synthetic_dir, dirs_exist_ok=True)
    synthetic = json.loads((shipped / "items.json").read_text())
    qa_pixel = synthetic["landsat_qa_pixel"]
    items = []
    for item in real_items:
        item = json.loads(json.dumps(item))
        for asset in item["assets"].values():
            asset["href"] = str(real_dir / asset["href"])
        date = item["properties"]["datetime"][:10]
        if date not in qa_pixel:
            raise RuntimeError(f"The shipped synthetic layers have no Landsat qa_pixel on {date}, only on "
                               f"{sorted(qa_pixel)}: rebuild them with `python examples/make_sample_synthetic.py`.")
        item["assets"]["qa_pixel"] = {**qa_pixel[date], "href": str(synthetic_dir / qa_pixel[date]["href"])}
        items.append(item)
    for item in synthetic["features"]:
        for asset in item["assets"].values():
            asset["href"] = str(synthetic_dir / asset["href"])
        items.append(item)
    catalog = directory / "catalog.json"
    write_atomic(catalog, json.dumps({"type": "FeatureCollection", "features": items}).encode())
    made = "unique_xr.testing.synthetic, seed 0, shipped"
    provenance = (
        ("Landsat 8 C2 L2 surface reflectance (2 dates)", "real", "USGS via xlandsat sample crops, CC-0"),
        ("Landsat qa_pixel", "synthetic", f"{made} (crops ship no QA band)"),
        ("MODIS MCD43A4 NBAR + QA (daily)", "synthetic", made),
        ("DEM 30 m", "synthetic", made),
        ("Land cover 10 m (WorldCover classes)", "synthetic", made),
        ("Meteorology (ERA5-Land style)", "synthetic", made),
    )
    return StagedSample(catalog=catalog, grid=SAMPLE_GRID, dates=SAMPLE_DATES,
                        met_path=synthetic_dir / synthetic["met_path"], provenance=provenance)
