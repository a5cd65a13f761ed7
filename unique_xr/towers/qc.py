"""Quality control and aggregation of tower GPP: the training target, in g C m-2 d-1.

:func:`daily_gpp` turns FLUXNET-named tower data (from :mod:`unique_xr.towers.fluxnet`) into one
value per site-day, choosing the night-time (NT) or daytime (DT) partitioning, and keeps only days
with enough good data. :func:`monthly_gpp` and :func:`annual_gpp` do the same for MM and YY files.
:func:`check_gpp_units` catches unit mistakes before they reach a model.

Quality follows FLUXNET2015: at HH/HR the ``NEE_*_QC`` flag of a record is 0 (measured), 1 (good
gap-fill), 2 (medium) or 3 (poor); at DD and coarser ``NEE_VUT_REF_QC`` is the fraction of the
period's records that are measured or good-quality gap-filled. A day's quality here is that same
fraction, so ``min_quality`` means the same at every resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from unique_xr.errors import MissingVariableError, SpecError, UnitsError
from unique_xr.schema import GPP_UNITS

__all__ = [
    "CARBON_PER_UMOL_CO2",
    "annual_gpp",
    "check_gpp_units",
    "daily_gpp",
    "monthly_gpp",
    "umol_co2_to_gc_per_day",
]

#: Grams of carbon per micromole of CO2 (molar mass of C, 12.011 g mol-1, times 1e-6).
CARBON_PER_UMOL_CO2 = 12.011e-6
_SECONDS = {"HH": 1800, "HR": 3600}
_PER_DAY = {"HH": 48, "HR": 24}
_PARTITIONINGS = ("NT", "DT", "mean")
#: Largest plausible GPP: daily 40 g C m-2 d-1 (the highest FLUXNET crop days reach ~30), yearly 5000.
MAX_DAILY_GPP = 40.0
MAX_ANNUAL_GPP = 5000.0


def umol_co2_to_gc_per_day(values):
    r"""Mean CO2 flux over a day in umol m-2 s-1 -> carbon flux in g C m-2 d-1.

    .. math:: F_{\mathrm{g\,C\,m^{-2}\,d^{-1}}} = \bar F_{\mathrm{\mu mol\,m^{-2}\,s^{-1}}}
              \times 12.011\times10^{-6}\,\mathrm{g\,\mu mol^{-1}} \times 86400\,\mathrm{s\,d^{-1}}

    Examples
    --------
    >>> from unique_xr.towers.qc import umol_co2_to_gc_per_day
    >>> round(umol_co2_to_gc_per_day(10.0), 4)
    10.3775
    """
    return values * CARBON_PER_UMOL_CO2 * 86400.0


# --------------------------------------------------------------------------- unit checks
def check_gpp_units(values, *, units: str = GPP_UNITS, what: str = "GPP") -> None:
    """Raise :class:`UnitsError` when GPP values cannot be in ``units``.

    Tests the 99th percentile against the largest plausible GPP (40 g C m-2 d-1 for daily means,
    5000 g C m-2 yr-1 for yearly sums) and the median against -1 (a negative typical GPP is NEE,
    or a sign flip). Only robust statistics are used, so a few spikes do not trip it.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.towers.qc import check_gpp_units
    >>> check_gpp_units(np.array([1.0, 5.0, 12.0]))
    >>> check_gpp_units(np.array([300.0, 450.0, 120.0]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    unique_xr.errors.UnitsError: GPP: 99th percentile 447 g m-2 d-1 is above the largest plausible value 40 ...
    """
    values = np.asarray(values, dtype="float64")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return
    limit = MAX_ANNUAL_GPP if units.endswith("yr-1") else MAX_DAILY_GPP
    p99, median = float(np.percentile(finite, 99)), float(np.median(finite))
    if p99 > limit:
        raise UnitsError(
            f"{what}: 99th percentile {p99:.3g} {units} is above the largest plausible value {limit:g} "
            f"(max {finite.max():.4g}, {int((finite > limit).sum())} of {finite.size} values above). These look "
            "like sums over a month or year, or half-hourly fluxes mislabelled as daily. Read the file with "
            "unique_xr.towers.read_fluxnet so its resolution is known, and use daily_gpp (DD, HH, HR), "
            "monthly_gpp (MM) or annual_gpp (YY)."
        )
    if median < -1.0:
        raise UnitsError(
            f"{what}: median {median:.3g} {units} is negative. GPP is positive by convention; this looks like "
            "NEE (negative = uptake) or a sign flip. Select a GPP_NT_* / GPP_DT_* column."
        )


def _check_step(df: pd.DataFrame, resolution: str) -> None:
    """The median time step within sites must match the resolution (HH: 30 min, HR: 60 min, DD: 1 day)."""
    want = {"HH": pd.Timedelta(minutes=30), "HR": pd.Timedelta(hours=1), "DD": pd.Timedelta(days=1)}[resolution]
    steps = df[["site", "time"]].drop_duplicates().sort_values(["site", "time"]).groupby("site")["time"].diff()
    steps = steps.dropna()
    if steps.empty:
        return
    step = steps.median()
    if step != want:
        looks = "already daily" if step >= pd.Timedelta(days=1) else f"a {step} series"
        raise UnitsError(
            f"The data are labelled {resolution} (one record every {want}) but the median time step is {step}: "
            f"the series looks {looks}. Pass resolution= matching the data (HH, HR or DD), or read the file "
            "with unique_xr.towers.read_fluxnet, which takes the resolution from the file."
        )


def _check_diurnal_cycle(values: pd.Series, days: pd.Series) -> None:
    """Half-hourly GPP has a diurnal cycle (zero at night); a flat day means daily values were repeated."""
    frame = pd.DataFrame({"v": values.to_numpy(), "d": days.to_numpy()}).dropna()
    stats = frame.groupby("d")["v"].agg(["max", "mean"])
    stats = stats[stats["mean"] > 0.5]
    if len(stats) < 3:
        return
    ratio = float((stats["max"] / stats["mean"]).median())
    if ratio < 1.3:
        raise UnitsError(
            f"Half-hourly GPP shows no diurnal cycle (median daily max/mean = {ratio:.2f}; real HH GPP is near 0 "
            "at night, giving 2-4). The values look like daily GPP repeated at every half-hour; read the daily "
            "(DD) file instead, or check the column."
        )


# ---------------------------------------------------------------------------- selection
def _gpp_columns(columns: Sequence[str], partitioning: str) -> tuple[list[str], str]:
    """The GPP column(s) for ``partitioning`` and the USTAR-threshold suffix they share."""
    if partitioning not in _PARTITIONINGS:
        raise SpecError(f"partitioning must be one of {_PARTITIONINGS}, got {partitioning!r}.")
    wanted = ("NT", "DT") if partitioning == "mean" else (partitioning,)
    for suffix in ("VUT_REF", "CUT_REF", "VUT_USTAR50", "CUT_USTAR50"):
        names = [f"GPP_{p}_{suffix}" for p in wanted]
        if all(n in columns for n in names):
            return names, suffix
    present = [c for c in columns if c.startswith("GPP_")]
    need = " and ".join(f"GPP_{p}_VUT_REF" for p in wanted)
    raise MissingVariableError(
        f"partitioning={partitioning!r} needs {need} (or the _CUT_REF / _VUT_USTAR50 versions); the data have "
        f"GPP columns {present or 'none'}. Pick a partitioning the data have (NT, DT, or mean of both)."
    )


def _quality_column(columns: Sequence[str], suffix: str, gpp_columns: list[str], given: str | None) -> str | None:
    if given is not None:
        if given not in columns:
            raise MissingVariableError(f"quality_column={given!r} is not in the data; columns: {list(columns)[:20]}...")
        return given
    for name in (f"NEE_{suffix}_QC", "NEE_VUT_REF_QC", *(f"{c}_QC" for c in gpp_columns)):
        if name in columns:
            return name
    return None


def _resolution(df: pd.DataFrame, resolution: str | None) -> str:
    res = resolution or df.attrs.get("resolution")
    if res is None:
        raise SpecError(
            "The data carry no resolution (df.attrs['resolution'] is unset, as after some pandas operations). "
            "Pass resolution='HH', 'HR', 'DD', 'MM' or 'YY'."
        )
    return res


def _validate(df: pd.DataFrame, min_quality: float | None) -> None:
    for col in ("site", "time"):
        if col not in df.columns:
            raise MissingVariableError(
                f"GPP QC needs a {col!r} column, as made by unique_xr.towers.read_fluxnet / read_towers; "
                f"the data have {list(df.columns)[:12]}..."
            )
    if min_quality is not None and not (0.0 <= float(min_quality) <= 1.0):
        raise SpecError(
            f"min_quality is the minimum fraction of measured or good gap-filled records, in [0, 1]; got {min_quality!r}."
        )


def _finish(out: pd.DataFrame, *, min_quality: float | None, drop: bool, units: str, attrs: dict) -> pd.DataFrame:
    ok = out["gpp"].notna()
    if min_quality is not None:
        ok &= out["gpp_qc"].fillna(-1.0) >= float(min_quality)
    n_low = int((~ok & out["gpp"].notna()).sum())
    if drop:
        out = out[ok]
    else:
        out = out.assign(gpp_ok=ok.to_numpy())
    out = out.reset_index(drop=True)
    out.attrs.update({
        **attrs,
        "units": {"gpp": units, "gpp_qc": "1"},
        "min_quality": min_quality,
        "n_below_quality": n_low,
    })
    return out


# ---------------------------------------------------------------------------- public API
def daily_gpp(
    df: pd.DataFrame,
    *,
    partitioning: Literal["NT", "DT", "mean"] = "NT",
    min_quality: float | None = 0.8,
    drop: bool = True,
    resolution: str | None = None,
    quality_column: str | None = None,
    good_flags: Sequence[int] = (0, 1),
) -> pd.DataFrame:
    r"""Daily tower GPP in g C m-2 d-1 with a quality fraction, from DD, HH or HR FLUXNET data.

    * **DD**: ``GPP_NT_VUT_REF`` / ``GPP_DT_VUT_REF`` as they are (FLUXNET DD is already
      g C m-2 d-1), quality = ``NEE_VUT_REF_QC`` (the fraction of the day's half-hours that are
      measured or good-quality gap-filled). FluxDataKit files without it use ``GPP_*_VUT_REF_QC``.
    * **HH / HR**: the mean of the day's half-hours (hours), converted from umol CO2 m-2 s-1 with
      :func:`umol_co2_to_gc_per_day`; only complete days (48 / 24 records, all with GPP) are kept;
      quality = fraction of the day's records whose ``NEE_VUT_REF_QC`` is in ``good_flags``
      (0 measured, 1 good gap-fill). Days are the file's local standard time days.

    Parameters
    ----------
    df
        From :func:`~unique_xr.towers.read_fluxnet`, :func:`~unique_xr.towers.read_fluxnet_table` or
        :func:`~unique_xr.towers.read_bigleaf_halfhourly` (``site``, ``time``, FLUXNET columns).
    partitioning
        ``"NT"`` night-time (Reichstein) or ``"DT"`` daytime (Lasslop) partitioning, or ``"mean"`` of
        both. The ``_VUT_REF`` version is used, else ``_CUT_REF``, else ``_VUT_USTAR50`` (bigleaf HH).
    min_quality
        Days whose quality fraction is below it are dropped (or flagged); ``None`` skips the test
        (needed for tables without a QC column, e.g. agds ``df_for_stepwise_regression.csv``).
    drop
        ``False`` keeps low-quality days with ``gpp_ok = False`` instead of dropping them.
    resolution
        ``"DD"``, ``"HH"`` or ``"HR"``; default ``df.attrs["resolution"]``.
    quality_column
        Use this column as the quality fraction (DD) or flag (HH/HR) instead of the default.
    good_flags
        HH/HR flags counted as good.

    Returns
    -------
    pandas.DataFrame
        ``site``, ``date`` (datetime64 at midnight), ``gpp`` (g m-2 d-1), ``gpp_qc`` (0-1), and at
        HH/HR ``n_records``; ``gpp_ok`` when ``drop=False``. ``attrs``: ``units``, ``partitioning``,
        ``gpp_columns``, ``quality_column``, ``min_quality``, ``source_resolution``,
        ``n_below_quality`` (and ``n_incomplete_days`` at HH/HR).

    Raises
    ------
    MissingVariableError
        No GPP column for ``partitioning``, or no quality column while ``min_quality`` is set.
    UnitsError
        The time step does not match the resolution (a "half-hourly" series that is daily), HH GPP
        without a diurnal cycle, or daily GPP outside the plausible range (see :func:`check_gpp_units`).
    SpecError
        Bad ``partitioning`` / ``min_quality``, or a resolution other than DD, HH, HR.

    Examples
    --------
    >>> import pandas as pd
    >>> from unique_xr.towers import daily_gpp
    >>> dd = pd.DataFrame({"site": "CH-Lae", "time": pd.date_range("2010-06-01", periods=3),
    ...                    "GPP_NT_VUT_REF": [9.1, 10.4, 7.7], "NEE_VUT_REF_QC": [0.95, 0.5, 0.85]})
    >>> daily_gpp(dd, resolution="DD")[["date", "gpp", "gpp_qc"]].to_dict("list")["gpp"]
    [9.1, 7.7]
    """
    _validate(df, min_quality)
    res = _resolution(df, resolution)
    if res not in ("DD", "HH", "HR"):
        hint = {"MM": "monthly_gpp", "YY": "annual_gpp"}.get(res, "read_fluxnet")
        raise SpecError(f"daily_gpp needs DD, HH or HR data, got {res}; use {hint} for {res} data.")
    names, suffix = _gpp_columns(list(df.columns), partitioning)
    qcol = _quality_column(list(df.columns), suffix, names, quality_column)
    if qcol is None and min_quality is not None:
        raise MissingVariableError(
            f"No quality column for {names} (looked for NEE_{suffix}_QC, NEE_VUT_REF_QC, {names[0]}_QC). Pass "
            "quality_column=..., or min_quality=None to keep every day without a quality test."
        )
    _check_step(df, res)
    gpp = df[names].mean(axis=1, skipna=False)
    attrs = {"partitioning": partitioning, "gpp_columns": names, "quality_column": qcol,
             "source_resolution": res, "source": df.attrs.get("source")}
    if res == "DD":
        out = pd.DataFrame({
            "site": df["site"].to_numpy(),
            "date": df["time"].dt.floor("D").to_numpy(),
            "gpp": gpp.to_numpy(dtype="float64"),
            "gpp_qc": df[qcol].to_numpy(dtype="float64") if qcol else np.nan,
        })
    else:
        day = df["time"].dt.floor("D")
        _check_diurnal_cycle(gpp, day)
        good = df[qcol].isin(list(good_flags)) if qcol else pd.Series(np.nan, index=df.index)
        frame = pd.DataFrame({"site": df["site"].to_numpy(), "date": day.to_numpy(), "v": gpp.to_numpy(),
                              "good": good.to_numpy(dtype="float64")})
        agg = frame.groupby(["site", "date"], sort=True).agg(
            mean=("v", "mean"), n_valid=("v", "count"), n_records=("v", "size"), qc=("good", "mean"))
        complete = (agg["n_records"] == _PER_DAY[res]) & (agg["n_valid"] == _PER_DAY[res])
        attrs["n_incomplete_days"] = int((~complete).sum())
        agg = agg[complete].reset_index()
        out = pd.DataFrame({
            "site": agg["site"].to_numpy(),
            "date": agg["date"].to_numpy(),
            "gpp": umol_co2_to_gc_per_day(agg["mean"].to_numpy(dtype="float64")),
            "gpp_qc": agg["qc"].to_numpy(dtype="float64"),
            "n_records": agg["n_records"].to_numpy(dtype="int64"),
        })
    check_gpp_units(out["gpp"].to_numpy(), what=f"daily GPP from {names} at {res}")
    return _finish(out, min_quality=min_quality, drop=drop, units=GPP_UNITS, attrs=attrs)


def _period_gpp(df, *, want: str, partitioning, min_quality, drop, resolution, quality_column, units, key):
    _validate(df, min_quality)
    res = _resolution(df, resolution)
    if res != want:
        raise SpecError(f"This function needs {want} data, got {res}; use daily_gpp for DD/HH/HR.")
    names, suffix = _gpp_columns(list(df.columns), partitioning)
    qcol = _quality_column(list(df.columns), suffix, names, quality_column)
    if qcol is None and min_quality is not None:
        raise MissingVariableError(f"No quality column for {names}; pass quality_column=... or min_quality=None.")
    out = pd.DataFrame({
        "site": df["site"].to_numpy(),
        key: df["time"].dt.year.to_numpy() if key == "year" else df["time"].to_numpy(),
        "gpp": df[names].mean(axis=1, skipna=False).to_numpy(dtype="float64"),
        "gpp_qc": df[qcol].to_numpy(dtype="float64") if qcol else np.nan,
    })
    check_gpp_units(out["gpp"].to_numpy(), units=units, what=f"{want} GPP from {names}")
    attrs = {"partitioning": partitioning, "gpp_columns": names, "quality_column": qcol, "source_resolution": res,
             "source": df.attrs.get("source")}
    return _finish(out, min_quality=min_quality, drop=drop, units=units, attrs=attrs)


def monthly_gpp(
    df: pd.DataFrame,
    *,
    partitioning: Literal["NT", "DT", "mean"] = "NT",
    min_quality: float | None = None,
    drop: bool = True,
    resolution: str | None = None,
    quality_column: str | None = None,
) -> pd.DataFrame:
    """Monthly tower GPP (mean day of the month, g C m-2 d-1) from an MM FLUXNET file.

    Returns ``site``, ``month`` (first day, datetime64), ``gpp``, ``gpp_qc``; options as in
    :func:`daily_gpp` (``min_quality`` off by default: a month's QC fraction is coarse).
    """
    return _period_gpp(df, want="MM", partitioning=partitioning, min_quality=min_quality, drop=drop,
                       resolution=resolution, quality_column=quality_column, units=GPP_UNITS, key="month")


def annual_gpp(
    df: pd.DataFrame,
    *,
    partitioning: Literal["NT", "DT", "mean"] = "NT",
    min_quality: float | None = None,
    drop: bool = True,
    resolution: str | None = None,
    quality_column: str | None = None,
) -> pd.DataFrame:
    """Annual tower GPP (g C m-2 yr-1) from a YY FLUXNET file.

    Returns ``site``, ``year`` (int), ``gpp``, ``gpp_qc``; options as in :func:`daily_gpp`.
    """
    return _period_gpp(df, want="YY", partitioning=partitioning, min_quality=min_quality, drop=drop,
                       resolution=resolution, quality_column=quality_column, units="g m-2 yr-1", key="year")
