"""Rebuild the real-pixel extracts in this folder from the shared data (not run by the tests).

Run from the repository root, with the shared data at ``../shared/data`` (or ``$SHARED_DATA``)::

    python tests/data/pixels/extract_pixels.py           # needs rasterio, pandas
    PYTHONPATH=<dir with pyhdf> python tests/data/pixels/extract_pixels.py   # + the MOD09GA state extract

Every value written is copied unchanged from its source; see SOURCE.md for origins and licences.
"""

from __future__ import annotations

import glob
import json
import os
import re
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("SHARED_DATA", HERE.parents[3] / "shared" / "data"))
TOWERS = SHARED / "towers"


def landsat8_crops() -> None:
    """A 3x3 grid of fixed pixels per scene, the lowest- and highest-NDVI pixel, and one SR_B2 fill pixel."""
    import rasterio

    rows, mtl_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for tgz in sorted((SHARED / "scenes" / "landsat8_c2l2_crops").glob("*.tar.gz")):
            with tarfile.open(tgz) as tar:
                tar.extractall(tmp, filter="data")
        for mtl in sorted(glob.glob(f"{tmp}/*_MTL.txt")):
            text = Path(mtl).read_text()
            scene = Path(mtl).name.removesuffix("_MTL.txt")
            for b in range(2, 8):

                def get(key: str, b: int = b, text: str = text) -> float:
                    return float(re.search(rf"\b{key}_BAND_{b} = (\S+)", text).group(1))

                mtl_rows.append({
                    "scene": scene, "band": f"SR_B{b}", "reflectance_mult": get("REFLECTANCE_MULT"),
                    "reflectance_add": get("REFLECTANCE_ADD"), "reflectance_minimum": get("REFLECTANCE_MINIMUM"),
                    "reflectance_maximum": get("REFLECTANCE_MAXIMUM"), "quantize_cal_min": int(get("QUANTIZE_CAL_MIN")),
                    "quantize_cal_max": int(get("QUANTIZE_CAL_MAX")),
                })
        for b2 in sorted(glob.glob(f"{tmp}/*_SR_B2.TIF")):
            scene = Path(b2).name.removesuffix("_SR_B2.TIF")
            bands = {f"SR_B{b}": rasterio.open(f"{tmp}/{scene}_SR_B{b}.TIF").read(1) for b in range(2, 8)}
            h, w = bands["SR_B2"].shape
            picks = [(int(h * fy), int(w * fx)) for fy in (1 / 6, 1 / 2, 5 / 6) for fx in (1 / 6, 1 / 2, 5 / 6)]
            red, nir = (bands[k].astype("f8") * 2.75e-5 - 0.2 for k in ("SR_B4", "SR_B5"))
            valid = np.all([(v >= 7273) & (v <= 43636) for v in bands.values()], axis=0)
            ndvi = np.where(valid, (nir - red) / (nir + red), np.nan)
            picks += [np.unravel_index(np.nanargmin(ndvi), ndvi.shape), np.unravel_index(np.nanargmax(ndvi), ndvi.shape)]
            fill = np.argwhere(bands["SR_B2"] == 0)
            if len(fill):
                picks.append(tuple(fill[0]))
            for r, c in picks:
                rows.append({"scene": scene, "row": int(r), "col": int(c), **{k: int(v[r, c]) for k, v in bands.items()}})
    pd.DataFrame(rows).to_csv(HERE / "landsat8_c2l2_sr_dn.csv", index=False)
    pd.DataFrame(mtl_rows).to_csv(HERE / "landsat8_c2l2_mtl_scaling.csv", index=False)


def landsat7_qa_pixel() -> None:
    """Every distinct real QA_PIXEL value at the towers, two observations each, with their SR DNs."""
    df = pd.read_csv(TOWERS / "fluxnet2015_daily_gpp_x_modis_nbar_lst" / "landsat7_c2l2_at_towers.csv.gz")
    df = df.dropna(subset=["QA_PIXEL"]).sort_values("id")
    counts = df["QA_PIXEL"].value_counts()
    out = df.groupby("QA_PIXEL", sort=True).head(2).sort_values(["QA_PIXEL", "id"])
    out = out[["id", "sitename", "SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7", "QA_PIXEL"]].copy()
    out["n_in_source"] = out["QA_PIXEL"].map(counts)
    for c in ["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7", "QA_PIXEL"]:
        out[c] = out[c].astype("int64")
    out.to_csv(HERE / "landsat7_c2l2_qa_pixel_at_towers.csv", index=False)

    item = json.loads((SHARED / "stac" / "planetary_computer_responses" / "items" / "landsat-c2-l2-pc.json").read_text())
    item = item[0] if isinstance(item, list) else item
    bitfields = item["assets"]["qa_pixel"]["classification:bitfields"]
    (HERE / "landsat_c2_qa_pixel_bitfields.json").write_text(json.dumps(
        {"source_item": item["id"], "classification:bitfields": bitfields}, indent=1) + "\n")


def modis_towers() -> None:
    """MCD43A4 NBAR + mandatory QA and MOD11A1 LST + QA rows (stratified), and MOD13A1 composites."""
    m = pd.read_csv(TOWERS / "fluxnet2015_daily_gpp_x_modis_nbar_lst" / "daily_gpp_x_modis_x_met.csv.gz")
    m = m.dropna(subset=["LST_Day_1km_Terra_QA"])
    cols = ["site", "date", *[f"Nadir_Reflectance_Band{b}" for b in range(1, 8)], *[f"QA_Band{b}" for b in range(1, 8)],
            "LST_Day_1km_Terra", "LST_Day_1km_Terra_QA", "NDVI_derived", "EVI_derived"]
    strata = m.groupby(["QA_Band1", "LST_Day_1km_Terra_QA"], sort=True)
    out = strata.sample(n=5, random_state=20240417)[cols].sort_values(["site", "date"])
    out.to_csv(HERE / "mcd43a4_mod11a1_at_towers.csv", index=False, float_format="%.10g")

    p = pd.read_csv(TOWERS / "modis_mod13a1_at_10_towers" / "phenofit_MOD13A1_10fluxsites.csv").dropna()
    out = p.groupby("SummaryQA", sort=True).sample(n=8, random_state=20240417)
    cols = ["site", "date", "SummaryQA", "DetailedQA", "NDVI", "EVI", "sur_refl_b01", "sur_refl_b02", "sur_refl_b03",
            "sur_refl_b07"]
    out = out[cols].sort_values(["SummaryQA", "site", "date"])
    for c in cols[2:]:
        out[c] = out[c].astype("int64")
    out.to_csv(HERE / "mod13a1_at_towers.csv", index=False)


def mod09ga_state() -> None:
    """Every distinct value of the real MOD09GA state_1km layer, and the layer's own bit documentation."""
    try:
        from pyhdf.SD import SD, SDC
    except ImportError:
        print("pyhdf not installed: skipping the MOD09GA state extract")
        return
    path = SHARED / "scenes" / "modis_hdf4_and_netcdf" / "MOD09GA.A2008296.h14v17.006.2015181011753.hdf"
    sds = SD(str(path), SDC.READ).select("state_1km_1")
    values, counts = np.unique(sds.get(), return_counts=True)
    pd.DataFrame({"state_1km": values, "n_pixels": counts}).to_csv(HERE / "mod09ga_state_1km_values.csv", index=False)
    attrs = sds.attributes()
    (HERE / "mod09ga_state_1km_qa_index.txt").write_text(
        f"# attribute 'QA index' of SDS state_1km_1 in {path.name} (verbatim)\n"
        f"# long_name: {attrs['long_name']}; _FillValue: {attrs['_FillValue']}; valid_range: {attrs['valid_range']}\n"
        + attrs["QA index"].strip("\n") + "\n"
    )


if __name__ == "__main__":
    landsat8_crops()
    landsat7_qa_pixel()
    modis_towers()
    mod09ga_state()
