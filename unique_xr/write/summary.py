"""Per-class summaries of a GPP cube: daily means over space, sums over periods; lazy, grouped with flox.

The grid is projected, so every pixel has the same area and the area-weighted mean of a class is the
plain mean of its pixels. Each class row of :func:`summarise` is the mean over the pixels of that
class that have a value on that day; the ``"all"`` row is the same over the pixels of every class
listed (with ``by=None``, over every pixel of the grid).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from unique_xr._optional import import_optional
from unique_xr.errors import AllFillError, MissingVariableError, SpecError, UnitsError
from unique_xr.schema import SPATIAL_DIMS, require_variables

#: Name of the row that covers every class together.
ALL = "all"
#: ``code`` of the ``"all"`` row (class codes are non-negative).
ALL_CODE = -1
#: Period frequencies :func:`summarise` accepts, with what they mean (any multiple of these works too).
FREQS = {"YS": "calendar years", "QS-DEC": "seasons DJF, MAM, JJA, SON", "MS": "calendar months",
         "D": "days (e.g. '8D')"}
_SEASONS = {12: "DJF", 3: "MAM", 6: "JJA", 9: "SON"}


def summarise(ds: xr.Dataset, *, by: str | xr.DataArray | None = "land_cover", variable: str = "gpp",
              freq: str | None = None) -> xr.Dataset:
    """Mean daily ``variable`` per class of ``by`` and for the whole region; with ``freq``, sums per period.

    Parameters
    ----------
    ds
        Cube with ``variable`` ``(time, y, x)`` on a projected grid (NaN where there is no value).
    by
        Class labels on ``(y, x)``: the name of a variable of ``ds`` or a DataArray. Class names come
        from its ``flag_values`` / ``flag_meanings`` attributes (as ESA WorldCover ``land_cover``);
        without them each class is named by its code. Codes not listed in ``flag_values``, the
        ``_FillValue`` and NaN are no class. ``None``: only the ``"all"`` row, over the whole grid.
    variable
        The daily variable to summarise, e.g. ``"gpp"`` or ``"gpp_spread"``.
    freq
        ``None``: one value per time step, the mean over the class's pixels with a value that day
        (units of ``variable``, e.g. g m-2 d-1). ``"YS"``, ``"QS-DEC"``, ``"MS"`` or ``"<n>D"``: the
        sum over each year, season (DJF, MAM, JJA, SON), month or n days, in g m-2.

    Returns
    -------
    xarray.Dataset
        Dims ``(class, time)``; ``class`` holds the class names then ``"all"``, with the class code
        as coordinate ``code`` (-1 for ``"all"``). Classes that occur nowhere in ``by`` are dropped.
        Variables: ``variable`` (daily mean, or period sum), ``pixels`` (class area in pixels; area =
        pixels x ``pixel_area_m2`` attribute) and ``valid_pixels`` (pixels with a value, per day);
        with ``freq``, ``valid_days`` (days with a value) instead of ``valid_pixels``, and the
        coordinates ``days`` (days of the period inside the cube's time span) and ``calendar_days``.
        Values are float64 (summed in float64, so sums over millions of pixels keep their precision).
        Lazy when ``ds`` is Dask-backed.

    Notes
    -----
    Missing days in a period sum: the sum is the mean of the valid days times the days of the
    period inside the cube's time span,

    .. math:: S_{c,p} = \\frac{D_p}{|V_{c,p}|} \\sum_{t \\in V_{c,p}} \\bar g_{c,t}

    where :math:`\\bar g_{c,t}` is the daily class mean, :math:`V_{c,p}` the days of period
    :math:`p` on which class :math:`c` had a value (``valid_days``) and :math:`D_p` is ``days``. A
    period the cube covers only in part sums over the covered days only: compare ``days`` with
    ``calendar_days`` before reading it as an annual or seasonal total. No valid day: NaN.

    Only the 2-D labels are read when this is called (to find which classes occur); the reduction of
    ``variable`` stays lazy and runs blockwise on Dask (:func:`flox.xarray.xarray_reduce`).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from unique_xr.write.summary import summarise
    >>> lc = xr.DataArray(np.array([[10, 10], [30, 0]], "uint8"), dims=("y", "x"),
    ...                   attrs={"flag_values": [10, 30], "flag_meanings": "tree_cover grassland"})
    >>> gpp = xr.DataArray(np.array([[[4.0, 6.0], [2.0, 9.0]]] * 3, "float32"), dims=("time", "y", "x"),
    ...                    attrs={"units": "g m-2 d-1"})
    >>> ds = xr.Dataset({"gpp": gpp, "land_cover": lc}, coords={"time": pd.date_range("2020-01-01", periods=3)})
    >>> summarise(ds)["gpp"].isel(time=0).values.tolist()
    [5.0, 2.0, 4.0]
    >>> summarise(ds, freq="MS")["gpp"].sel({"class": "tree_cover"}).values.tolist()
    [15.0]
    """
    require_variables(ds, [variable], purpose=f"summarise({variable!r})")
    values = ds[variable]
    if set(values.dims) != {"time", *SPATIAL_DIMS}:
        raise SpecError(f"summarise needs {variable!r} with dims (time, y, x); it has {values.dims}.")
    values = values.reset_coords(drop=True).transpose("time", *SPATIAL_DIMS)
    units = values.attrs.get("units", "")
    if freq is not None:  # check before anything is read
        _period_offset(freq)
        _sum_units(variable, units)
    labels, by_name = _labels(ds, by)
    if labels is None:
        sums = values.sum(SPATIAL_DIMS, skipna=True, dtype="float64").expand_dims("class")
        counts = values.count(SPATIAL_DIMS).expand_dims("class")
        codes, names, pixels = np.array([], "int64"), [], np.array([values.sizes["y"] * values.sizes["x"]])
    else:
        codes, names, pixels = _classes_present(labels)
        flox = import_optional("flox.xarray", purpose="grouping by class in summarise")
        grouped = {"func": "nansum", "expected_groups": codes.astype(labels.dtype), "dim": SPATIAL_DIMS,
                   "fill_value": 0}
        sums = flox.xarray_reduce(values, labels, **grouped, dtype="float64")
        counts = flox.xarray_reduce(values, labels, **{**grouped, "func": "count"})
        sums, counts = (a.drop_vars("class").transpose("class", "time") for a in (sums, counts))
        sums = xr.concat([sums, sums.sum("class").expand_dims("class")], "class")
        counts = xr.concat([counts, counts.sum("class").expand_dims("class")], "class")
        pixels = np.append(pixels, pixels.sum())
    name = str(variable)
    mean = sums / counts.where(counts > 0)
    out = xr.Dataset({name: mean, "valid_pixels": counts, "pixels": ("class", pixels.astype("int64"))})
    out = out.assign_coords({"class": [*names, ALL], "code": ("class", np.append(codes, ALL_CODE).astype("int64"))})
    out[name].attrs = {**{k: v for k, v in values.attrs.items() if k in ("long_name", "standard_name", "units")},
                       "cell_methods": f"{values.attrs.get('cell_methods', 'time: mean')} area: mean"
                       + ("" if labels is None else f" where {by_name}")}
    out["valid_pixels"].attrs = {"long_name": f"pixels with a {name} value", "units": "1"}
    out["pixels"].attrs = {"long_name": "pixels of the class", "units": "1"}
    out["code"].attrs = {"long_name": f"class code in {by_name} ({ALL_CODE}: every class)"}
    out.attrs = {"summary_of": name, "summary_by": by_name, "pixel_area_m2": _pixel_area(values)}
    return out if freq is None else _period_sums(out, name, units, freq)


def _labels(ds: xr.Dataset, by: str | xr.DataArray | None) -> tuple[xr.DataArray | None, str]:
    """(``by`` as a DataArray on ds's ``(y, x)`` named ``class``, its own name); ``(None, "grid")`` for None."""
    if by is None:
        return None, "grid"
    if isinstance(by, xr.DataArray):
        labels = by
    elif isinstance(by, str):
        if by not in ds.variables:
            static = sorted(str(k) for k, v in ds.data_vars.items() if set(v.dims) == set(SPATIAL_DIMS))
            raise MissingVariableError(
                f"summarise(by={by!r}): no variable {by!r} in the cube, which has {sorted(map(str, ds.data_vars))} "
                f"(on (y, x): {static}). Pass by='<name>' of a (y, x) class variable, by=<DataArray of labels "
                "on (y, x)>, or by=None for the whole region only."
            )
        labels = ds[by]
    else:
        raise SpecError(f"summarise(by=...) takes a variable name, a DataArray or None; got {type(by).__name__}.")
    name = labels.name if labels.name is not None else "labels"
    if set(labels.dims) != set(SPATIAL_DIMS):
        raise SpecError(f"summarise(by={name!r}): the labels have dims {labels.dims}; they must be (y, x). "
                        f"Select one layer first, e.g. ds[{name!r}].isel(time=-1, drop=True).")
    for dim in SPATIAL_DIMS:
        if labels.sizes[dim] != ds.sizes[dim] or (dim in labels.indexes and dim in ds.indexes
                                                  and not labels.indexes[dim].equals(ds.indexes[dim])):
            raise SpecError(f"summarise(by={name!r}): the labels' {dim} ({labels.sizes[dim]} values) differ from "
                            f"the cube's ({ds.sizes[dim]}); put them on the cube's grid first (e.g. .reindex_like(ds)).")
    labels = labels.reset_coords(drop=True).drop_vars(list(SPATIAL_DIMS), errors="ignore").rename("class")
    return labels.assign_coords({d: ds[d].variable for d in SPATIAL_DIMS if d in ds.coords}), str(name)


def _classes_present(labels: xr.DataArray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(codes, names, pixel counts) of the classes that occur in ``labels``, in code order."""
    attrs = labels.attrs
    data = labels.data
    if hasattr(data, "dask"):
        import dask
        import dask.array

        found, counts = dask.compute(*dask.array.unique(data, return_counts=True))
    else:
        found, counts = np.unique(np.asarray(data), return_counts=True)
    keep = np.isfinite(found) if found.dtype.kind == "f" else np.ones(found.shape, bool)
    if "flag_values" in attrs:
        flags = np.atleast_1d(np.asarray(attrs["flag_values"])).astype("int64")
        meanings = str(attrs.get("flag_meanings", "")).split()
        if len(meanings) != flags.size:
            raise SpecError(f"The labels' flag_values {flags.tolist()} and flag_meanings {meanings} differ in "
                            "length; give one name per value (see ESA_WORLDCOVER_CLASSES in unique_xr.search.collections).")
        named = dict(zip(flags.tolist(), meanings, strict=True))
        keep &= np.isin(found, flags)
    else:
        named = {}
        for key in ("_FillValue", "missing_value"):
            fill = attrs.get(key, labels.encoding.get(key))
            if fill is not None:
                keep &= found != fill
    if not keep.any():
        listed = f"flag_values {attrs['flag_values']}" if "flag_values" in attrs else "any class"
        raise AllFillError(f"No pixel of the labels has {listed}; the values seen are {found[:12].tolist()}. "
                           "Check that the labels were read (not all fill) and match their flag_values.")
    found, counts = found[keep], counts[keep].astype("int64")
    if found.size and np.any(found != np.round(found)):
        raise SpecError(f"Class labels must be whole numbers; found {found[found != np.round(found)][:5].tolist()}.")
    codes = found.astype("int64")
    return codes, [named.get(int(c), str(int(c))) for c in codes], counts


def _pixel_area(values: xr.DataArray) -> float:
    """Area of one pixel in CRS units squared (m2 on a projected grid), from the ``x``/``y`` spacing."""
    spacing = [float(abs(np.diff(np.asarray(values[d][:2]))[0])) if d in values.coords and values.sizes[d] > 1
               else float("nan") for d in SPATIAL_DIMS]
    return spacing[0] * spacing[1]


def _period_sums(daily: xr.Dataset, name: str, units: str, freq: str) -> xr.Dataset:
    """Per-period sums of the daily class means: mean of the valid days x days of the period in the cube."""
    step = _period_offset(freq)
    mean = daily[name]
    period_mean = mean.resample(time=freq).mean()
    valid_days = mean.notnull().resample(time=freq).sum().astype("int64")
    times = pd.DatetimeIndex(daily["time"].values)
    first, after_last = times.min().normalize(), times.max().normalize() + pd.Timedelta(days=1)
    starts = pd.DatetimeIndex(period_mean["time"].values)
    ends = starts + step
    days = np.array([(min(e, after_last) - max(s, first)).days for s, e in zip(starts, ends, strict=True)])
    out = xr.Dataset({name: period_mean * xr.DataArray(days, dims="time"), "valid_days": valid_days,
                      "pixels": daily["pixels"]})
    out = out.assign_coords(days=("time", days), calendar_days=("time", (ends - starts).days.to_numpy()))
    if freq == "QS-DEC":
        out = out.assign_coords(season=("time", [_SEASONS[m] for m in starts.month]))
    out[name].attrs = {"long_name": f"{daily[name].attrs.get('long_name', name)}, summed over each period",
                       "units": _sum_units(name, units), "cell_methods": f"{daily[name].attrs['cell_methods']} time: sum",
                       "comment": "mean of the valid days x days of the period inside the cube's time span"}
    out["valid_days"].attrs = {"long_name": f"days with a {name} value in the period", "units": "1"}
    out["days"].attrs = {"long_name": "days of the period inside the cube's time span", "units": "1"}
    out["calendar_days"].attrs = {"long_name": "days of the period", "units": "1"}
    out.attrs = {**daily.attrs, "summary_freq": freq}
    return out


def _sum_units(name: str, units: str) -> str:
    """Units of a sum over days of a daily rate: ``"g m-2 d-1"`` -> ``"g m-2"``."""
    if not units.endswith("d-1"):
        raise UnitsError(f"Period sums need a daily rate (units ending in 'd-1', e.g. 'g m-2 d-1'); {name!r} has "
                         f"units {units!r}. Summarise it with freq=None, or set its units attribute.")
    return units[: -len("d-1")].strip()


def _period_offset(freq: str) -> pd.DateOffset:
    """The pandas offset of ``freq``, which must start periods (years, quarters, months) or count days."""
    accepted = ", ".join(f"{k!r} ({v})" for k, v in FREQS.items())
    try:
        step = pd.tseries.frequencies.to_offset(freq)
    except (TypeError, ValueError) as err:
        raise SpecError(f"freq={freq!r} is not a pandas frequency ({err}); use one of {accepted}.") from None
    if not isinstance(step, pd.offsets.YearBegin | pd.offsets.QuarterBegin | pd.offsets.MonthBegin | pd.offsets.Day):
        raise SpecError(f"freq={freq!r} does not label periods by their first day; use one of {accepted}.")
    return step
