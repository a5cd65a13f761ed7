"""Feature maps: one 2-D image per location-year, rows time steps through the year, columns variables.

The CNN of Wu (EGU2020-2135) reads each forest location-year as a map whose rows are the time
steps of the year and whose columns are the input variables, so its convolutions see phenology
(along time) and the relations between variables (across columns) together. Forest type enters
as one constant column per class (one-hot), so the map is ``n_steps x (n_variables + n_types)``.

A missing cell is NaN in :attr:`FeatureMaps.values`; the model reads the values with gaps set to
zero plus the mask of observed cells (:attr:`FeatureMaps.observed`), so nothing is gap-filled.

Time steps (:data:`TIME_STEPS`)
    ``monthly`` (12 rows), ``16-day`` (23 rows: days 1-16, 17-32, ... as MODIS 16-day composites)
    and ``8-day`` (46 rows, as the MODIS 8-day products). Every record is averaged into the row
    its date falls in. A table coarser than the step asked for (monthly records for 16-day rows)
    is refused, since most rows would be empty by construction rather than by missing data.

This module is numpy and pandas only; :mod:`.cube` builds the same maps from xarray cubes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from unique_xr.errors import SpecError
from unique_xr.models.cnn.schema import FOREST_TYPES, INPUTS

__all__ = [
    "DEFAULT_VARIABLES",
    "TIME_STEPS",
    "FeatureMaps",
    "MapSpec",
    "feature_maps_from_table",
    "step_of_day",
]

#: Time step name -> (rows per year, days per row; 0 for calendar months).
TIME_STEPS: dict[str, tuple[int, int]] = {"monthly": (12, 0), "16-day": (23, 16), "8-day": (46, 8)}
#: The time-varying inputs of the shipped configuration (see :data:`unique_xr.models.cnn.schema.INPUTS`).
DEFAULT_VARIABLES: tuple[str, ...] = tuple(INPUTS)


def step_of_day(day_of_year: np.ndarray, month: np.ndarray, time_step: str) -> np.ndarray:
    """Row index (0-based) of each date for ``time_step``: the month, or the 16-/8-day period.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.models.cnn.featuremap import step_of_day
    >>> step_of_day(np.array([1, 16, 17, 365, 366]), np.array([1, 1, 1, 12, 12]), "16-day").tolist()
    [0, 0, 1, 22, 22]
    """
    n_steps, days = _time_step(time_step)
    if days == 0:
        return np.asarray(month, dtype=np.int64) - 1
    return np.minimum((np.asarray(day_of_year, dtype=np.int64) - 1) // days, n_steps - 1)


def _time_step(name: str) -> tuple[int, int]:
    if name not in TIME_STEPS:
        raise SpecError(f"time_step must be one of {sorted(TIME_STEPS)}; got {name!r}.")
    return TIME_STEPS[name]


@dataclass(frozen=True, kw_only=True)
class MapSpec:
    """What a feature map holds: its time-varying variables, time step and forest-type columns.

    Examples
    --------
    >>> from unique_xr.models.cnn.featuremap import MapSpec
    >>> spec = MapSpec(time_step="16-day")
    >>> spec.shape, spec.columns[:3]
    ((23, 11), ('lai', 'evi', 'et'))
    """

    variables: tuple[str, ...] = DEFAULT_VARIABLES
    time_step: str = "monthly"
    forest_types: tuple[str, ...] = FOREST_TYPES

    def __post_init__(self) -> None:
        object.__setattr__(self, "variables", tuple(self.variables))
        object.__setattr__(self, "forest_types", tuple(self.forest_types))
        _time_step(self.time_step)
        if not self.variables:
            raise SpecError("A feature map needs at least one time-varying variable.")
        for what, names in (("variables", self.variables), ("forest_types", self.forest_types)):
            if len(set(names)) != len(names):
                raise SpecError(f"{what} repeats a name: {list(names)}.")

    @property
    def n_steps(self) -> int:
        return TIME_STEPS[self.time_step][0]

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names of the map: the variables, then ``forest_<TYPE>`` for each forest type."""
        return self.variables + tuple(f"forest_{t}" for t in self.forest_types)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_steps, len(self.columns))

    def to_dict(self) -> dict[str, Any]:
        return {"variables": list(self.variables), "time_step": self.time_step,
                "forest_types": list(self.forest_types)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MapSpec:
        return cls(variables=tuple(data["variables"]), time_step=data["time_step"],
                   forest_types=tuple(data["forest_types"]))


@dataclass
class FeatureMaps:
    """A stack of feature maps and the location-years they belong to.

    Attributes
    ----------
    spec : MapSpec
    values : numpy.ndarray, float32, shape (n, n_steps, n_variables)
        Time-varying inputs; NaN where missing.
    forest : numpy.ndarray, float32, shape (n, n_types)
        One-hot forest type (all zero when the type is unknown or not a forest class).
    keys : pandas.DataFrame
        One row per map: ``site, year, igbp`` for tables (cubes use their own keys).
    """

    spec: MapSpec
    values: np.ndarray
    forest: np.ndarray
    keys: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        n, t, v = self.values.shape
        if (t, v) != (self.spec.n_steps, len(self.spec.variables)):
            raise SpecError(f"values have shape {self.values.shape}; the spec needs (n, {self.spec.n_steps}, "
                            f"{len(self.spec.variables)}).")
        if self.forest.shape != (n, len(self.spec.forest_types)):
            raise SpecError(f"forest has shape {self.forest.shape}; expected ({n}, {len(self.spec.forest_types)}).")
        if len(self.keys) == 0 and len(self.keys.columns) == 0:
            self.keys = pd.DataFrame(index=pd.RangeIndex(n))  # no keys: one empty row per map
        if len(self.keys) != n:
            raise SpecError(f"keys have {len(self.keys)} rows for {n} maps; give one row per map (or none).")

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def observed(self) -> np.ndarray:
        """Boolean mask of observed (finite) cells, shape (n, n_steps, n_variables)."""
        return np.isfinite(self.values)

    @property
    def missing_fraction(self) -> float:
        """Share of time-varying cells that are missing."""
        return float(1.0 - self.observed.mean()) if self.values.size else 0.0

    def subset(self, index: np.ndarray) -> FeatureMaps:
        index = np.asarray(index)
        return FeatureMaps(self.spec, self.values[index], self.forest[index], self.keys.iloc[index].reset_index(drop=True))

    def with_values(self, values: np.ndarray) -> FeatureMaps:
        """The same maps with other time-varying values (e.g. with cells hidden)."""
        return FeatureMaps(self.spec, np.asarray(values, dtype=np.float32), self.forest, self.keys)

    def flat(self) -> tuple[np.ndarray, list[str]]:
        """Flattened features for classic models: every cell (NaN kept), then the one-hot type.

        Returns the ``(n, n_steps * n_variables + n_types)`` array and its column names
        (``<variable>_<row>``, then ``forest_<TYPE>``).
        """
        n = len(self)
        names = [f"{v}_{t:02d}" for t in range(self.spec.n_steps) for v in self.spec.variables]
        names += [f"forest_{t}" for t in self.spec.forest_types]
        return np.concatenate([self.values.reshape(n, -1), self.forest], axis=1), names


def forest_one_hot(igbp: Sequence[Any], forest_types: Sequence[str]) -> np.ndarray:
    """One-hot rows for IGBP codes; unknown and non-forest codes give all-zero rows."""
    codes = pd.Series(np.asarray(igbp, dtype=object)).astype("string")
    return np.stack([(codes == t).fillna(False).to_numpy(dtype=np.float32) for t in forest_types], axis=1) \
        if len(forest_types) else np.zeros((len(codes), 0), np.float32)


def _native_step_days(times: pd.Series, sites: pd.Series) -> float:
    frame = pd.DataFrame({"site": sites.to_numpy(), "time": pd.to_datetime(times).to_numpy()})
    frame = frame.drop_duplicates().sort_values(["site", "time"])
    steps = frame.groupby("site")["time"].diff().dropna().dt.total_seconds() / 86400.0
    return float(steps.median()) if len(steps) else np.nan


def feature_maps_from_table(table: pd.DataFrame, spec: MapSpec | None = None, *, site: str = "site",
                            time: str = "time", igbp: str = "igbp") -> FeatureMaps:
    """Build one feature map per site-year of a long table (one row per site and date).

    Parameters
    ----------
    table
        Rows keyed by ``site`` and ``time`` (datetime) with an ``igbp`` class and one column per
        variable of ``spec`` (e.g. :func:`unique_xr.towers.forest.read_forest_table`). NaN cells
        stay missing; site-years with no row in some steps get those rows missing.
    spec
        Variables, time step and forest types; :class:`MapSpec` defaults when None.

    Returns
    -------
    FeatureMaps
        Sorted by site and year; ``keys`` holds ``site, year, igbp``.

    Raises
    ------
    SpecError
        A variable or key column is absent, or the table's records are coarser than the step.

    Examples
    --------
    >>> import pandas as pd
    >>> from unique_xr.models.cnn.featuremap import MapSpec, feature_maps_from_table
    >>> t = pd.DataFrame({"site": "XX-Abc", "igbp": "DBF", "time": pd.date_range("2010-01-01", periods=12, freq="MS"),
    ...                   "evi": [0.1] * 11 + [float("nan")]})
    >>> maps = feature_maps_from_table(t, MapSpec(variables=("evi",)))
    >>> maps.values.shape, int(maps.observed.sum()), maps.forest[0].tolist()
    ((1, 12, 1), 11, [0.0, 0.0, 0.0, 1.0, 0.0])
    """
    spec = spec or MapSpec()
    need = [site, time, igbp, *spec.variables]
    absent = [c for c in need if c not in table.columns]
    if absent:
        raise SpecError(
            f"The table has no column(s) {absent} for the feature map (it has {list(table.columns)}). "
            "Variables a table does not carry can be added as all-NaN columns: the CNN treats them as missing."
        )
    if len(table) == 0:
        raise SpecError("The table has no rows; nothing to build feature maps from.")
    times = pd.DatetimeIndex(pd.to_datetime(table[time]))
    n_steps, days = TIME_STEPS[spec.time_step]
    native = _native_step_days(pd.Series(times), table[site])
    if days and np.isfinite(native) and native > days + 0.5:
        raise SpecError(
            f"The table's records are {native:.0f} days apart (median per site), coarser than the "
            f"{spec.time_step} rows asked for: most rows would be empty by construction. Use "
            f"time_step='monthly' for monthly tables, or a daily table for 16-day / 8-day maps."
        )
    row = step_of_day(times.dayofyear.to_numpy(), times.month.to_numpy(), spec.time_step)
    key_frame = pd.DataFrame({"site": table[site].astype(str).to_numpy(), "year": times.year.to_numpy()})
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(key_frame), sort=True)
    n = len(uniques)
    values = np.asarray(table[list(spec.variables)].to_numpy(dtype=np.float64))
    ok = np.isfinite(values)
    sums = np.zeros((n, n_steps, values.shape[1]))
    counts = np.zeros_like(sums)
    np.add.at(sums, (codes, row), np.where(ok, values, 0.0))
    np.add.at(counts, (codes, row), ok.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan).astype(np.float32)
    keys = pd.MultiIndex.from_tuples(list(uniques), names=["site", "year"]).to_frame(index=False)
    first_igbp = pd.Series(table[igbp].to_numpy()).groupby(codes).first()
    keys["igbp"] = first_igbp.reindex(range(n)).to_numpy()
    return FeatureMaps(spec, means, forest_one_hot(keys["igbp"], spec.forest_types), keys)
