"""IGBP normalisation and site metadata, on the real site lists."""

from __future__ import annotations

import pandas as pd
import pytest

from unique_xr.towers import (
    IGBP_CLASSES,
    TowerDataError,
    TowerFileWarning,
    igbp_code,
    read_site_metadata,
)


def test_igbp_codes_and_long_names():
    for code, name in IGBP_CLASSES.items():
        assert igbp_code(code) == code and igbp_code(code.lower()) == code
        assert igbp_code(name) == code and igbp_code(name.upper()) == code
    # spellings seen in the shared site lists
    seen = {
        "Evergreen Needleleaf Forest": "ENF", "Evergreen Needleleaf Forests": "ENF", "Mixed Forest": "MF",
        "Woody Savannas": "WSA", "Savannas": "SAV", "Grasslands": "GRA", "Croplands": "CRO", "Cropland": "CRO",
        "Urban and Built-Up": "URB", "Cropland/Natural Vegetation Mosaic": "CVM", "Permanent Wetlands": "WET",
        "Closed Shrublands": "CSH", "Open Shrublands": "OSH", "Snow and Ice": "SNO", "Water": "WAT",
        "Deciduous Broadleaf Forest": "DBF", " EBF ": "EBF",
    }
    for name, code in seen.items():
        assert igbp_code(name) == code, name
    assert igbp_code(1) == "ENF" and igbp_code(17) == "WAT" and igbp_code(12.0) == "CRO"
    for missing in (None, float("nan"), "", "NA", "Unclassified", "(null)"):
        assert igbp_code(missing) is None


def test_igbp_unknown_names_are_rejected_with_the_list():
    with pytest.raises(TowerDataError) as info:
        igbp_code("Tundra")
    message = str(info.value)
    assert "Tundra" in message and all(code in message for code in IGBP_CLASSES)
    with pytest.raises(TowerDataError, match="Evergreen Needleleaf Trees"):
        igbp_code(pd.Series(["ENF", "Evergreen Needleleaf Trees", None]))
    with pytest.raises(TowerDataError):
        igbp_code(18)


def test_igbp_series_keeps_missing():
    out = igbp_code(pd.Series(["Grasslands", None, "dbf", "Unclassified"]))
    assert out.tolist() == ["GRA", None, "DBF", None]


@pytest.mark.parametrize(
    ("relpath", "n_sites", "site", "expected"),
    [
        ("fluxnet2015_daily_gpp_x_modis_nbar_lst/site_info.csv", 330, "BE-Bra", (51.30761, 4.51984, 16.0, "MF")),
        ("site_metadata/fluxdatakit_fdk_site_info.csv", 339, "AT-Neu", None),
        ("site_metadata/ingestr_siteinfo_fluxnet2015.csv", 166, "AR-Vir", (-28.2395, -56.1886, 97.0, "ENF")),
        ("site_metadata/ecostress_calval_ameriflux_sites_metadata_ebc_filt.csv", 121, "US-NC3",
         (35.799, -76.656, 5.0, "ENF")),
        ("fluxnet2015_daily_gpp_pmodel_25sites/fluxnet2015_sites_metainfo.csv", 166, "AR-SLu",
         (-33.4648, -66.4598, 887.0, "MF")),
        ("fluxnet2015_daily_4sites/site_meta.csv", 4, "CH-Lae", (47.4781, 8.365, 689.0, "MF")),
        ("fluxdatakit_daily_meteorology_100sites/siteinfo_100sites.csv", 100, "AU-ASM", None),
        ("fluxnet2015_monthly_cardamom_204sites/location_fluxnet.csv", 204, "AR-SLu", (-33.4648, -66.4598, None, "MF")),
    ],
)
def test_site_lists(towers, relpath, n_sites, site, expected):
    df = read_site_metadata(towers / relpath)
    assert list(df.columns[:5]) == ["site", "lat", "lon", "elv", "igbp"]
    assert len(df) == n_sites and df["site"].is_unique
    assert df["lat"].between(-90, 90).all() and df["lon"].between(-180, 180).all()
    codes = set(df["igbp"].dropna())
    assert codes <= set(IGBP_CLASSES)
    row = df.set_index("site").loc[site]
    if expected is not None:
        lat, lon, elv, igbp = expected
        assert (row["lat"], row["lon"]) == pytest.approx((lat, lon))
        assert (pd.isna(row["elv"]) if elv is None else row["elv"] == pytest.approx(elv))
        assert row["igbp"] == igbp


def test_long_names_are_normalised_and_missing_kept(towers):
    df = read_site_metadata(towers / "fluxnet2015_daily_gpp_x_modis_nbar_lst" / "site_info.csv")
    raw = pd.read_csv(towers / "fluxnet2015_daily_gpp_x_modis_nbar_lst" / "site_info.csv")
    assert "igbp_land_use" not in df.columns and {"koeppen_code", "whc", "date_start"} <= set(df.columns)
    assert df["igbp"].isna().sum() == (raw["igbp_land_use"] == "Unclassified").sum() == 3
    assert df.set_index("site").loc["SE-Nor", "igbp"] == "ENF"
    # no IGBP column at all: igbp is all missing, the rest is read
    fdk = read_site_metadata(towers / "fluxdatakit_daily_meteorology_100sites" / "siteinfo_100sites.csv")
    assert fdk["igbp"].isna().all() and fdk["elv"].notna().all()


def test_code_column_wins_and_long_names_fill_its_gaps(towers):
    df = read_site_metadata(towers / "site_metadata" / "ingestr_siteinfo_fluxnet2015.csv")
    raw = pd.read_csv(towers / "site_metadata" / "ingestr_siteinfo_fluxnet2015.csv")
    assert (df["igbp"].to_numpy() == raw["classid"].to_numpy()).all()  # codes taken as they are
    assert "igbp_land_use" in df.columns  # the long-name column is kept unchanged


def test_latin1_list_with_one_row_per_data_tier(towers):
    path = towers / "site_metadata" / "flux_modis_paper_sites_fluxnet2015.csv"
    with pytest.raises(UnicodeDecodeError):
        pd.read_csv(path)
    raw = pd.read_csv(path, encoding="latin-1")
    df = read_site_metadata(path)
    assert raw["siteID"].duplicated().sum() > 100 and len(df) == raw["siteID"].nunique()
    assert df.set_index("site").loc["AR-SLu", "igbp"] == "MF"


def test_conflicting_repeats_warn_and_bad_lists_raise(tmp_path, towers):
    path = tmp_path / "sites.csv"
    path.write_text("sitename,lat,lon,IGBP\nXX-Aaa,10,20,ENF\nXX-Aaa,10,20,DBF\n")
    with pytest.warns(TowerFileWarning, match="XX-Aaa"):
        df = read_site_metadata(path)
    assert df["igbp"].tolist() == ["ENF"]
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("sitename,lat,lon\nXX-Aaa,120.5,45.0\n")
    with pytest.raises(TowerDataError, match="out of range"):
        read_site_metadata(swapped)
    with pytest.raises(TowerDataError, match="not a site list"):
        read_site_metadata(towers / "site_metadata" / "fluxdatakit_fdk_site_fullyearsequence.csv")
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("sitename,lat,lon,IGBP\nXX-Aaa,10,20,Tundra\n")
    with pytest.raises(TowerDataError, match="Tundra"):
        read_site_metadata(unknown)
