"""Helpers shared by the tower readers: the error and warning they raise, CSV reading, site and date columns.

Nothing here is public API; :mod:`unique_xr.towers` re-exports :class:`TowerDataError` and
:class:`TowerFileWarning`.
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from unique_xr._optional import import_optional
from unique_xr.errors import TowerDataError, TowerFileWarning

__all__ = ["TowerDataError", "TowerFileWarning"]

#: Strings that mean "missing" in the tower files: FLUXNET writes -9999, R writes NA.
MISSING_STRINGS: tuple[str, ...] = ("-9999", "-9999.0", "-9999.00", "-9999.000", "NA", "NaN", "nan", "")
#: The FLUXNET missing-value code, also when it was parsed as a number.
FLUXNET_MISSING = -9999.0

#: Column names that carry the site id in the tables we know, in order of preference.
SITE_COLUMNS: tuple[str, ...] = (
    "site", "sitename", "siteid", "siteID", "Site ID", "site_id", "mysitename", "Site", "SITE_ID", "flux_site",
    "Flux_name",
)




def as_path(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`~pathlib.Path`, raising :class:`FileNotFoundError` with the folder's files listed."""
    p = Path(path)
    if not p.is_file():
        parent = p.parent
        hint = ""
        if parent.is_dir():
            names = sorted(x.name for x in parent.iterdir())[:20]
            hint = f" Files in {parent}: {names}."
        raise FileNotFoundError(f"No tower file at {p}.{hint}")
    return p


def read_csv(path: Path, **kwargs) -> pd.DataFrame:
    """``pandas.read_csv`` with the tower files' missing-value strings and a Latin-1 fallback.

    pandas' C parser accepts ``\\n``, ``\\r\\n`` and bare ``\\r`` line endings (the FLUXNET2015 YY
    files use bare ``\\r``). Some site lists are Latin-1 (accents in site names), not UTF-8.
    """
    kwargs.setdefault("na_values", list(MISSING_STRINGS))
    kwargs.setdefault("keep_default_na", True)
    kwargs.setdefault("low_memory", False)
    try:
        try:
            return pd.read_csv(path, **kwargs)
        except UnicodeDecodeError:
            return pd.read_csv(path, encoding="latin-1", **kwargs)
    except pd.errors.EmptyDataError as err:
        raise TowerDataError(f"{path} is empty ({_size(path)}, no header line): expected a CSV table with a "
                             "header. Check the file, or write it again.") from err
    except (pd.errors.ParserError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise TowerDataError(f"{path} cannot be parsed as a CSV table ({_size(path)}): {err}. The file is damaged "
                             "or truncated (a partial download or copy?); fetch or write it again.") from err


def _size(path: Path) -> str:
    try:
        return f"{Path(path).stat().st_size} bytes"
    except OSError:
        return "size unknown"


def read_header(path: Path) -> list[str]:
    """The column names of a CSV (gzip-compressed or not) or Parquet file, without reading the data."""
    if is_parquet(path):
        import_optional("pyarrow", purpose="reading Parquet tower tables")
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    try:
        return list(read_csv(path, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, EOFError) as err:
        raise TowerDataError(f"Could not read a header line from {path.name}: {err}") from err


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def read_table(path: Path) -> pd.DataFrame:
    """A Parquet file (needs pyarrow) or a CSV, by suffix."""
    if is_parquet(path):
        import_optional("pyarrow", purpose="reading Parquet tower tables")
        import pyarrow

        try:
            return pd.read_parquet(path)
        except (pyarrow.ArrowException, OSError) as err:
            raise TowerDataError(f"{path} cannot be read as a Parquet table ({_size(path)}): {err}. The file is "
                                 "damaged or truncated; fetch or write it again.") from err
    return read_csv(path)


def replace_fluxnet_missing(df: pd.DataFrame) -> pd.DataFrame:
    """Set every numeric -9999 to NaN (the FLUXNET missing code, whatever way it was parsed)."""
    numeric = df.select_dtypes(include="number").columns
    if len(numeric):
        values = df[numeric]
        bad = values == FLUXNET_MISSING
        if bad.to_numpy().any():
            df[numeric] = values.mask(bad)
    return df


def find_column(columns: Iterable[str], candidates: Sequence[str]) -> str | None:
    """The first of ``candidates`` present in ``columns`` (exact match, then case-insensitive)."""
    columns = list(columns)
    for name in candidates:
        if name in columns:
            return name
    lower = {c.lower(): c for c in columns}
    for name in candidates:
        if name.lower() in lower:
            return lower[name.lower()]
    return None


def site_column(columns: Iterable[str]) -> str | None:
    """The column holding the site id, if any (see :data:`SITE_COLUMNS`)."""
    return find_column(columns, SITE_COLUMNS)


def normalise_sites(values: pd.Series) -> pd.Series:
    """Site ids as stripped strings (``"AT-Neu"``), missing stays missing."""
    out = values.astype("string").str.strip()
    return out.astype(object).where(out.notna(), None)


def parse_days(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse dates/times; return ``(timestamps, bad)`` where ``bad`` marks values that did not parse."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]"), pd.Series(False, index=values.index)
    text = values.astype("string").str.strip()
    stamps = pd.to_datetime(text, errors="coerce", format="ISO8601")
    bad = stamps.isna() & text.notna() & (text != "")
    return stamps.astype("datetime64[ns]"), bad


def drop_unparsed_rows(df: pd.DataFrame, bad: pd.Series, *, column: str, path: Path) -> pd.DataFrame:
    """Drop rows whose ``column`` did not parse, with a :class:`TowerFileWarning` that shows them."""
    n_bad = int(bad.sum())
    if n_bad == 0:
        return df
    if n_bad > max(10, 0.01 * len(df)):
        examples = df.loc[bad, column].astype(str).head(5).tolist()
        raise TowerDataError(
            f"{path.name}: {n_bad} of {len(df)} rows have a {column!r} that is not a date (e.g. {examples}). "
            "That is too many to be a truncated last line; check the file's layout or pass a clean file."
        )
    rows = df.loc[bad].head(3)
    shown = "; ".join(",".join("" if pd.isna(v) else str(v) for v in row) for row in rows.itertuples(index=False))
    warnings.warn(
        f"{path.name}: dropped {n_bad} row(s) whose {column!r} is not a date: [{shown}]. The file looks "
        "truncated or damaged upstream (e.g. mlflx pmodel_outputs.csv ends mid-row); every other row was kept.",
        TowerFileWarning,
        stacklevel=3,
    )
    return df.loc[~bad]


def local_solar_day(times: pd.Series, lon: pd.Series | float | None) -> pd.Series:
    """The local solar day of instants in UTC: ``floor(time + lon / 15 h)``; the UTC day without ``lon``."""
    if lon is None:
        return times.dt.floor("D")
    offset = pd.to_timedelta(np.round(np.asarray(lon, dtype="float64") / 15.0 * 3600.0), unit="s")
    return (times + offset).dt.floor("D")
