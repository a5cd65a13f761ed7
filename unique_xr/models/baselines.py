r"""Baselines that the tower-trained GPP models must beat, in the same folds and on the same rows.

Each baseline is a small scikit-learn-like object working on a *feature frame* (one row per
site-day, canonical column names: ``igbp``, ``ndvi``, ``evi``, ``nirv``, ``sw_in`` [W m-2],
``rad_toa`` [W m-2], ``ta`` [degC], ``vpd`` [hPa], ...):

- ``fit(frame, y) -> self`` (``y`` an array aligned with the rows, or a column name; rows with a
  non-finite target are skipped), ``predict(frame) -> numpy.ndarray`` of GPP in g C m-2 d-1,
  NaN where an input it needs is missing;
- a ``name`` (the column its out-of-fold predictions get in a score table);
- ``to_dict()`` / ``from_dict()``: configuration and fitted parameters as JSON-able data, for a
  model card; a round trip gives identical predictions.

Baselines
    :class:`LinearVI` (least squares on vegetation indices), :class:`LightUseEfficiency` (a
    MOD17-style light-use-efficiency model calibrated per IGBP class), :class:`PModelColumn` (the
    P-model GPP column of the table) and :class:`TrainingMean` (the training mean: the floor any
    model must clear). :func:`fit_predict_in_folds` makes out-of-fold predictions for any of them.

The light-use-efficiency model follows MOD17 (Running et al. 2004, BioScience 54:547; Running &
Zhao 2015, MOD17 Collection 6 User's Guide):

.. math::

    \mathrm{GPP} = \varepsilon_{max}[\mathrm{IGBP}] \; f_T(T_a) \; f_{VPD}(\mathrm{VPD}) \;
                   \mathrm{fAPAR}(\mathrm{NDVI}) \; \mathrm{PAR}

with the numpy kernels :func:`fapar_from_ndvi`, :func:`temperature_scalar`,
:func:`vpd_scalar` and :func:`par_from_shortwave`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from unique_xr.errors import MissingVariableError, NotFittedError, SpecError
from unique_xr.models.cv import check_no_leakage

__all__ = [
    "BASELINES",
    "Baseline",
    "LightUseEfficiency",
    "LinearVI",
    "PModelColumn",
    "TrainingMean",
    "baseline_from_dict",
    "fapar_from_ndvi",
    "fit_predict_in_folds",
    "par_from_shortwave",
    "temperature_scalar",
    "vpd_scalar",
]

#: Share of shortwave radiation that is photosynthetically active (MOD17: PAR = 0.45 SWrad).
PAR_FRACTION = 0.45
#: A daily-mean flux in W m-2 times this is a daily total in MJ m-2 d-1 (86,400 s / 1e6).
W_M2_TO_MJ_M2_D = 0.0864
#: fAPAR = slope * NDVI + offset, clipped to [0, 1]: the linear relation commonly attributed to
#: Myneni & Williams (1994), Remote Sens. Environ. 49:200-211.
FAPAR_SLOPE, FAPAR_OFFSET = 1.24, -0.168
#: All-sky share of top-of-atmosphere radiation reaching the ground when there are no training
#: rows to calibrate it on: FAO-56 clear-sky Rso = 0.75 Ra (Allen et al. 1998, eq. 37).
CLEAR_SKY_FRACTION = 0.75


# --------------------------------------------------------------------------------------------
# numpy kernels
# --------------------------------------------------------------------------------------------


def fapar_from_ndvi(ndvi: np.ndarray, slope: float = FAPAR_SLOPE, offset: float = FAPAR_OFFSET) -> np.ndarray:
    """Fraction of absorbed PAR from NDVI, ``clip(slope * ndvi + offset, 0, 1)``; NaN stays NaN.

    The default linear relation (1.24, -0.168) is the one commonly attributed to Myneni &
    Williams (1994); it saturates at NDVI ~ 0.94 and is 0 below NDVI ~ 0.14.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.models.baselines import fapar_from_ndvi
    >>> fapar_from_ndvi(np.array([0.1, 0.5, 0.99, np.nan])).round(3).tolist()
    [0.0, 0.452, 1.0, nan]
    """
    ndvi = np.asarray(ndvi, dtype=np.float64)
    return np.clip(slope * ndvi + offset, 0.0, 1.0)


def temperature_scalar(ta: np.ndarray, t_low: Any, t_high: Any) -> np.ndarray:
    """MOD17 temperature ramp: 0 at or below ``t_low``, 1 at or above ``t_high``, linear between.

    MOD17 ramps on the daily minimum temperature; the baselines here use the daily *mean* air
    temperature (what the tower tables carry), so the calibrated ramp end points sit higher than
    MOD17's TMIN_min/TMIN_max. ``t_low``/``t_high`` broadcast against ``ta``; NaN stays NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.models.baselines import temperature_scalar
    >>> temperature_scalar(np.array([-10.0, 5.0, 30.0, np.nan]), 0.0, 10.0).tolist()
    [0.0, 0.5, 1.0, nan]
    """
    ta = np.asarray(ta, dtype=np.float64)
    return np.clip((ta - t_low) / (np.asarray(t_high) - t_low), 0.0, 1.0)


def vpd_scalar(vpd: np.ndarray, vpd_low: Any, vpd_high: Any) -> np.ndarray:
    """MOD17 vapour-pressure-deficit ramp: 1 at or below ``vpd_low``, 0 at or above ``vpd_high``.

    Units are those of ``vpd`` (hPa in a feature frame; MOD17's VPD_min 650 Pa is 6.5 hPa). NaN
    stays NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.models.baselines import vpd_scalar
    >>> vpd_scalar(np.array([2.0, 25.0, 60.0]), 10.0, 40.0).tolist()
    [1.0, 0.5, 0.0]
    """
    vpd = np.asarray(vpd, dtype=np.float64)
    return np.clip((np.asarray(vpd_high) - vpd) / (np.asarray(vpd_high) - vpd_low), 0.0, 1.0)


def par_from_shortwave(sw_in: np.ndarray) -> np.ndarray:
    """Daily PAR in MJ m-2 d-1 from daily-mean incoming shortwave in W m-2: ``0.45 * sw_in * 0.0864``.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.models.baselines import par_from_shortwave
    >>> par_from_shortwave(np.array([200.0])).round(4).tolist()
    [7.776]
    """
    return PAR_FRACTION * np.asarray(sw_in, dtype=np.float64) * W_M2_TO_MJ_M2_D


# --------------------------------------------------------------------------------------------
# the protocol
# --------------------------------------------------------------------------------------------


def _require(frame: pd.DataFrame, columns: Iterable[str], who: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MissingVariableError(
            f"{who} needs column(s) {missing}, absent from the feature frame (it has {list(frame.columns)[:30]}"
            f"{' ...' if frame.shape[1] > 30 else ''}). Build the frame with the library's feature code, or rename "
            "the columns to the canonical names."
        )


def _target(frame: pd.DataFrame, y: Any) -> np.ndarray:
    if isinstance(y, str):
        _require(frame, [y], "fit (target)")
        y = frame[y]
    y = np.asarray(y, dtype=np.float64).ravel()
    if y.size != len(frame):
        raise SpecError(f"the target has {y.size} values for {len(frame)} rows; give one target per row.")
    return y


def _floats(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    return frame[list(columns)].to_numpy(dtype=np.float64)


class Baseline:
    """Common protocol of the baselines: ``fit``, ``predict``, ``name``, ``to_dict``/``from_dict``.

    Subclasses keep their fitted parameters in ``self.fitted`` (a JSON-able dict, ``None`` until
    fitted) and their constructor arguments in :meth:`config`.
    """

    default_name: ClassVar[str] = "baseline"
    #: Columns the frame must have (values may be NaN).
    required: tuple[str, ...] = ()

    def __init__(self, *, name: str | None = None) -> None:
        self.name = str(name or self.default_name)
        self.fitted: dict[str, Any] | None = None

    def config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-able."""
        return {"name": self.name}

    def fit(self, frame: pd.DataFrame, y: Any) -> Baseline:  # pragma: no cover - overridden
        raise NotImplementedError

    def predict(self, frame: pd.DataFrame) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def _check_fitted(self) -> dict[str, Any]:
        if self.fitted is None:
            cls = type(self).__name__
            raise NotFittedError(
                f"{cls} {self.name!r} is not fitted: call .fit(frame, y) first, or load a fitted one with "
                f"{cls}.from_dict(...)."
            )
        return self.fitted

    def to_dict(self) -> dict[str, Any]:
        """Class, configuration and fitted parameters as JSON-able data (``fitted`` is None if unfitted)."""
        return {"class": type(self).__name__, "config": self.config(), "fitted": copy.deepcopy(self.fitted)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        """Rebuild a baseline from :meth:`to_dict` output.

        Called on :class:`Baseline` it dispatches on ``data["class"]``; called on a subclass it
        checks the class matches.
        """
        name = data.get("class") if isinstance(data, Mapping) else None
        if name not in BASELINES:
            raise SpecError(f"not a baseline description: class {name!r}; known classes are {sorted(BASELINES)}.")
        target = BASELINES[name]
        if cls is not Baseline and target is not cls:
            raise SpecError(f"{cls.__name__}.from_dict got a description of a {name}; use Baseline.from_dict.")
        model = target(**dict(data.get("config") or {}))
        model.fitted = copy.deepcopy(data.get("fitted"))
        return model

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args}){'' if self.fitted is None else ' [fitted]'}"


# --------------------------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------------------------


class TrainingMean(Baseline):
    """Predicts the mean training GPP everywhere: the floor every model must clear.

    Examples
    --------
    >>> import pandas as pd
    >>> from unique_xr.models.baselines import TrainingMean
    >>> TrainingMean().fit(pd.DataFrame(index=range(3)), [1.0, 2.0, float("nan")]).predict(pd.DataFrame(index=range(2)))
    array([1.5, 1.5])
    """

    default_name = "training_mean"

    def fit(self, frame: pd.DataFrame, y: Any) -> TrainingMean:
        y = _target(frame, y)
        ok = np.isfinite(y)
        if not ok.any():
            raise SpecError("TrainingMean.fit: the target has no finite value to average.")
        self.fitted = {"mean": float(y[ok].mean()), "n_rows": int(ok.sum())}
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), self._check_fitted()["mean"], dtype=np.float64)


class LinearVI(Baseline):
    r"""Ordinary least squares of GPP on vegetation indices, with an intercept.

    .. math:: \mathrm{GPP} = b_0 + \sum_k b_k \, \mathrm{VI}_k

    Rows where a feature or the target is NaN are skipped in ``fit``; ``predict`` gives NaN where
    any feature is NaN.

    Parameters
    ----------
    features : sequence of str, default ("ndvi", "evi", "nirv")
        Feature-frame columns used as regressors.
    name : str, default "linear_vi"

    Examples
    --------
    >>> import pandas as pd
    >>> from unique_xr.models.baselines import LinearVI
    >>> frame = pd.DataFrame({"ndvi": [0.2, 0.4, 0.6, 0.8, None]})
    >>> model = LinearVI(features=["ndvi"]).fit(frame, [1.0, 3.0, 5.0, 7.0, 9.0])
    >>> model.predict(frame).round(6).tolist()
    [1.0, 3.0, 5.0, 7.0, nan]
    """

    default_name = "linear_vi"

    def __init__(self, features: Sequence[str] = ("ndvi", "evi", "nirv"), *, name: str | None = None) -> None:
        super().__init__(name=name)
        if isinstance(features, str) or not features:
            raise SpecError(f"features must be a non-empty list of column names; got {features!r}.")
        self.features = tuple(str(f) for f in features)
        self.required = self.features

    def config(self) -> dict[str, Any]:
        return {"features": list(self.features), "name": self.name}

    def fit(self, frame: pd.DataFrame, y: Any) -> LinearVI:
        _require(frame, self.features, type(self).__name__)
        y = _target(frame, y)
        x = _floats(frame, self.features)
        ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
        n_ok = int(ok.sum())
        if n_ok <= len(self.features):
            raise SpecError(
                f"LinearVI.fit: only {n_ok} row(s) have the target and all of {list(self.features)} finite; at least "
                f"{len(self.features) + 1} are needed."
            )
        design = np.column_stack([np.ones(n_ok), x[ok]])
        coef, *_ = np.linalg.lstsq(design, y[ok], rcond=None)
        self.fitted = {
            "intercept": float(coef[0]),
            "coef": {f: float(c) for f, c in zip(self.features, coef[1:], strict=True)},
            "n_rows": n_ok,
        }
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        fitted = self._check_fitted()
        _require(frame, self.features, type(self).__name__)
        coef = np.array([fitted["coef"][f] for f in self.features])
        return fitted["intercept"] + _floats(frame, self.features) @ coef


class PModelColumn(Baseline):
    """The P-model GPP already in the table: fits nothing, predicts ``frame[column]``.

    Parameters
    ----------
    column : str, default "gpp_pmodel"
        The column holding the P-model GPP (g C m-2 d-1); NaN where the table has no value.
    name : str, default "pmodel"

    Raises
    ------
    MissingVariableError
        In ``predict``, when the column is absent (a misnamed column is an error, never NaN).
    """

    default_name = "pmodel"

    def __init__(self, column: str = "gpp_pmodel", *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.column = str(column)
        self.required = (self.column,)
        self.fitted = {}  # nothing to fit: always ready to predict

    def config(self) -> dict[str, Any]:
        return {"column": self.column, "name": self.name}

    def fit(self, frame: pd.DataFrame, y: Any) -> PModelColumn:
        _require(frame, [self.column], type(self).__name__)
        self.fitted = {}
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        _require(frame, [self.column], type(self).__name__)
        return frame[self.column].to_numpy(dtype=np.float64, na_value=np.nan)


def _grid_pairs(low: Sequence[float], high: Sequence[float]) -> list[tuple[float, float]]:
    return [(float(lo), float(hi)) for lo in low for hi in high if hi > lo]


class LightUseEfficiency(Baseline):
    r"""MOD17-style light-use-efficiency GPP, calibrated per IGBP class on the training rows.

    .. math::

        \mathrm{GPP} = \varepsilon_{max} \, f_T(T_a) \, f_{VPD}(\mathrm{VPD}) \,
                       \mathrm{fAPAR}(\mathrm{NDVI}) \, \mathrm{PAR}, \qquad
        \mathrm{PAR} = 0.45 \times 0.0864 \times SW_{in}

    with GPP in g C m-2 d-1, :math:`\varepsilon_{max}` in g C MJ-1, PAR in MJ m-2 d-1,
    ``sw_in`` the daily-mean incoming shortwave in W m-2, fAPAR from :func:`fapar_from_ndvi`,
    :math:`f_T` and :math:`f_{VPD}` the MOD17 ramps :func:`temperature_scalar` (on the daily
    *mean* air temperature ``ta`` in degC, not MOD17's daily minimum) and :func:`vpd_scalar`
    (``vpd`` in hPa, daily mean rather than MOD17's daytime mean).

    Calibration (``fit``), for each IGBP class with at least ``min_rows`` usable training rows:
    every pair of temperature end points (``t_low_grid`` x ``t_high_grid``, low < high) and of VPD
    end points is tried; for each, :math:`\varepsilon_{max}` is the least-squares slope through
    the origin of GPP on :math:`f_T f_{VPD}\,\mathrm{fAPAR}\,\mathrm{PAR}`, and the combination
    with the lowest training RMSE (and a positive slope) wins. The same calibration on all
    training rows gives the *pooled* parameters, used for classes with too few rows, classes
    never seen in training and rows without a class.

    Missing inputs, so the baseline is complete wherever NDVI is known:

    - ``sw_in`` NaN: ``toa_fraction * rad_toa`` is used (when the frame has ``rad_toa``), where
      ``toa_fraction`` is the mean all-sky transmissivity ``sum(sw_in) / sum(rad_toa)`` of the
      training rows having both (or, with no such row, the FAO-56 clear-sky 0.75); give a number
      to fix it instead.
    - ``ta`` or ``vpd`` NaN: that scalar is 1 (no limitation), in calibration and prediction alike.
    - ``ndvi`` NaN, or no radiation at all: the prediction is NaN.

    Parameters
    ----------
    t_low_grid, t_high_grid : sequence of float
        Candidate temperatures (degC) where :math:`f_T` reaches 0 and 1.
    vpd_low_grid, vpd_high_grid : sequence of float
        Candidate VPDs (hPa) where :math:`f_{VPD}` starts to fall from 1 and where it reaches 0.
    min_rows : int, default 100
        Fewest usable training rows for a class to get its own parameters.
    toa_fraction : float or None, default None
        Share of ``rad_toa`` used where ``sw_in`` is missing; None calibrates it in ``fit``.
    class_column : str, default "igbp"
        Column holding the land-cover class.
    name : str, default "lue_mod17"

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from unique_xr.models.baselines import LightUseEfficiency
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"igbp": "GRA", "ndvi": rng.uniform(0.3, 0.9, 500), "sw_in": rng.uniform(50, 300, 500),
    ...                       "rad_toa": 400.0, "ta": rng.uniform(-5, 25, 500), "vpd": rng.uniform(0, 30, 500)})
    >>> model = LightUseEfficiency(min_rows=100)
    >>> gpp = 1.2 * model.scalars(frame, t_low=0.0, t_high=10.0, vpd_low=10.0, vpd_high=40.0)
    >>> params = model.fit(frame, gpp).fitted["classes"]["GRA"]
    >>> round(params["eps_max"], 6), params["t_low"], params["t_high"], params["vpd_low"], params["vpd_high"]
    (1.2, 0.0, 10.0, 10.0, 40.0)
    """

    default_name = "lue_mod17"
    inputs = ("ndvi", "sw_in", "ta", "vpd")

    def __init__(
        self,
        *,
        t_low_grid: Sequence[float] = (-10.0, -5.0, 0.0, 5.0),
        t_high_grid: Sequence[float] = (5.0, 10.0, 15.0, 20.0),
        vpd_low_grid: Sequence[float] = (5.0, 10.0, 15.0),
        vpd_high_grid: Sequence[float] = (25.0, 40.0, 60.0),
        min_rows: int = 100,
        toa_fraction: float | None = None,
        class_column: str = "igbp",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.t_low_grid = tuple(float(v) for v in t_low_grid)
        self.t_high_grid = tuple(float(v) for v in t_high_grid)
        self.vpd_low_grid = tuple(float(v) for v in vpd_low_grid)
        self.vpd_high_grid = tuple(float(v) for v in vpd_high_grid)
        if not _grid_pairs(self.t_low_grid, self.t_high_grid) or not _grid_pairs(self.vpd_low_grid, self.vpd_high_grid):
            raise SpecError(
                "each ramp grid needs at least one (low, high) pair with low < high; got temperature "
                f"{self.t_low_grid} x {self.t_high_grid}, VPD {self.vpd_low_grid} x {self.vpd_high_grid}."
            )
        if int(min_rows) < 1:
            raise SpecError(f"min_rows must be a positive number of rows; got {min_rows!r}.")
        self.min_rows = int(min_rows)
        if toa_fraction is not None and not 0.0 < float(toa_fraction) <= 1.0:
            raise SpecError(f"toa_fraction must be in (0, 1] or None (calibrate); got {toa_fraction!r}.")
        self.toa_fraction = None if toa_fraction is None else float(toa_fraction)
        self.class_column = str(class_column)
        self.required = (self.class_column, *self.inputs)

    def config(self) -> dict[str, Any]:
        return {
            "t_low_grid": list(self.t_low_grid),
            "t_high_grid": list(self.t_high_grid),
            "vpd_low_grid": list(self.vpd_low_grid),
            "vpd_high_grid": list(self.vpd_high_grid),
            "min_rows": self.min_rows,
            "toa_fraction": self.toa_fraction,
            "class_column": self.class_column,
            "name": self.name,
        }

    # -- inputs --------------------------------------------------------------------------------

    def _shortwave(self, frame: pd.DataFrame, toa_fraction: float) -> np.ndarray:
        sw = frame["sw_in"].to_numpy(dtype=np.float64, na_value=np.nan)
        if "rad_toa" in frame.columns:
            toa = frame["rad_toa"].to_numpy(dtype=np.float64, na_value=np.nan)
            sw = np.where(np.isfinite(sw), sw, toa_fraction * toa)
        return sw

    def _calibrated_toa_fraction(self, frame: pd.DataFrame) -> float:
        if self.toa_fraction is not None:
            return self.toa_fraction
        if "rad_toa" not in frame.columns:
            return CLEAR_SKY_FRACTION
        sw = frame["sw_in"].to_numpy(dtype=np.float64, na_value=np.nan)
        toa = frame["rad_toa"].to_numpy(dtype=np.float64, na_value=np.nan)
        both = np.isfinite(sw) & np.isfinite(toa) & (toa > 0)
        if not both.any():
            return CLEAR_SKY_FRACTION
        return float(np.clip(sw[both].sum() / toa[both].sum(), 0.05, 1.0))

    def _apar(self, frame: pd.DataFrame, toa_fraction: float) -> np.ndarray:
        """fAPAR * PAR (MJ m-2 d-1); NaN where NDVI or radiation is missing."""
        ndvi = frame["ndvi"].to_numpy(dtype=np.float64, na_value=np.nan)
        return fapar_from_ndvi(ndvi) * par_from_shortwave(self._shortwave(frame, toa_fraction))

    @staticmethod
    def _met(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return (
            frame["ta"].to_numpy(dtype=np.float64, na_value=np.nan),
            frame["vpd"].to_numpy(dtype=np.float64, na_value=np.nan),
        )

    def scalars(
        self,
        frame: pd.DataFrame,
        *,
        t_low: Any,
        t_high: Any,
        vpd_low: Any,
        vpd_high: Any,
        toa_fraction: float | None = None,
    ) -> np.ndarray:
        """``f_T * f_VPD * fAPAR * PAR`` for given ramp end points: the prediction with eps_max = 1.

        ``toa_fraction`` defaults to the fitted one (or the fixed one, or 0.75 when unfitted).
        """
        _require(frame, self.inputs, type(self).__name__)
        if toa_fraction is None:
            fitted_fraction = (self.fitted or {}).get("toa_fraction")
            toa_fraction = self.toa_fraction or fitted_fraction or CLEAR_SKY_FRACTION
        ta, vpd = self._met(frame)
        f_t = np.where(np.isnan(ta), 1.0, temperature_scalar(ta, t_low, t_high))
        f_v = np.where(np.isnan(vpd), 1.0, vpd_scalar(vpd, vpd_low, vpd_high))
        return f_t * f_v * self._apar(frame, toa_fraction)

    # -- calibration ---------------------------------------------------------------------------

    def _calibrate(self, apar: np.ndarray, ta: np.ndarray, vpd: np.ndarray, y: np.ndarray) -> dict[str, Any] | None:
        """Best ramp end points and eps_max on these rows (all finite apar and y); None if no positive fit."""
        t_pairs = _grid_pairs(self.t_low_grid, self.t_high_grid)
        v_pairs = _grid_pairs(self.vpd_low_grid, self.vpd_high_grid)
        f_t = np.stack([np.where(np.isnan(ta), 1.0, temperature_scalar(ta, lo, hi)) for lo, hi in t_pairs])
        f_v = np.stack([np.where(np.isnan(vpd), 1.0, vpd_scalar(vpd, lo, hi)) for lo, hi in v_pairs])
        # For x = f_T f_V apar the through-origin slope is sxy / sxx and SSE = syy - sxy^2 / sxx:
        # every grid point's sums come from two matrix products.
        sxy = (f_t * (apar * y)) @ f_v.T
        sxx = (f_t**2 * apar**2) @ (f_v**2).T
        valid = (sxy > 0) & (sxx > 0)
        if not valid.any():
            return None
        gain = np.where(valid, sxy**2 / np.where(valid, sxx, 1.0), -np.inf)
        i, j = np.unravel_index(int(np.argmax(gain)), gain.shape)
        eps_max = float(sxy[i, j] / sxx[i, j])
        residual = y - eps_max * f_t[i] * f_v[j] * apar  # exact, unlike syy - gain
        return {
            "eps_max": eps_max,
            "t_low": t_pairs[i][0],
            "t_high": t_pairs[i][1],
            "vpd_low": v_pairs[j][0],
            "vpd_high": v_pairs[j][1],
            "n_rows": int(y.size),
            "train_rmse": float(np.sqrt(np.mean(residual * residual))),
        }

    def fit(self, frame: pd.DataFrame, y: Any) -> LightUseEfficiency:
        """Calibrate the pooled and per-class parameters on these (training) rows."""
        _require(frame, self.required, type(self).__name__)
        y = _target(frame, y)
        toa_fraction = self._calibrated_toa_fraction(frame)
        apar = self._apar(frame, toa_fraction)
        ta, vpd = self._met(frame)
        usable = np.isfinite(apar) & np.isfinite(y)
        if usable.sum() < 2:
            raise SpecError(
                f"LightUseEfficiency.fit: {int(usable.sum())} row(s) have a finite target, NDVI and radiation; "
                "nothing to calibrate on."
            )
        pooled = self._calibrate(apar[usable], ta[usable], vpd[usable], y[usable])
        if pooled is None:
            raise SpecError(
                "LightUseEfficiency.fit: no ramp combination gives a positive eps_max on the training rows (is the "
                "target GPP, positive on average?)."
            )
        classes: dict[str, dict[str, Any]] = {}
        pooled_classes: list[str] = []
        labels = frame[self.class_column]
        for label in sorted(labels[usable & labels.notna().to_numpy()].astype(str).unique()):
            rows = usable & (labels.astype(str) == label).to_numpy() & labels.notna().to_numpy()
            params = self._calibrate(apar[rows], ta[rows], vpd[rows], y[rows]) if rows.sum() >= self.min_rows else None
            if params is None:
                pooled_classes.append(label)
            else:
                classes[label] = params
        self.fitted = {
            "toa_fraction": toa_fraction,
            "pooled": pooled,
            "classes": classes,
            "pooled_classes": pooled_classes,
        }
        return self

    def parameters_for(self, labels: Any) -> pd.DataFrame:
        """The parameters used for each class label (pooled ones for unseen/small classes and NaN)."""
        fitted = self._check_fitted()
        keys = ("eps_max", "t_low", "t_high", "vpd_low", "vpd_high")
        labels = pd.Series(np.asarray(labels, dtype=object))
        own = labels.notna() & labels.astype(str).isin(list(fitted["classes"]))
        table = pd.DataFrame({k: np.full(len(labels), fitted["pooled"][k], dtype=np.float64) for k in keys})
        for label in labels[own].astype(str).unique():
            rows = (labels.astype(str) == label).to_numpy() & own.to_numpy()
            for k in keys:
                table.loc[rows, k] = fitted["classes"][label][k]
        table["source"] = np.where(own, "class", "pooled")
        return table

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """GPP in g C m-2 d-1; NaN where NDVI or all radiation is missing."""
        fitted = self._check_fitted()
        _require(frame, self.required, type(self).__name__)
        params = self.parameters_for(frame[self.class_column])
        x = self.scalars(
            frame,
            t_low=params["t_low"].to_numpy(),
            t_high=params["t_high"].to_numpy(),
            vpd_low=params["vpd_low"].to_numpy(),
            vpd_high=params["vpd_high"].to_numpy(),
            toa_fraction=fitted["toa_fraction"],
        )
        return params["eps_max"].to_numpy() * x


#: Baseline classes by name, for :func:`baseline_from_dict`.
BASELINES: dict[str, type[Baseline]] = {
    cls.__name__: cls for cls in (LinearVI, LightUseEfficiency, PModelColumn, TrainingMean)
}


def baseline_from_dict(data: Mapping[str, Any]) -> Baseline:
    """Rebuild any baseline from its :meth:`Baseline.to_dict` output (e.g. read from a model card).

    Examples
    --------
    >>> import json
    >>> import pandas as pd
    >>> from unique_xr.models.baselines import LinearVI, baseline_from_dict
    >>> frame = pd.DataFrame({"ndvi": [0.2, 0.5, 0.8]})
    >>> model = LinearVI(features=["ndvi"]).fit(frame, [1.0, 2.0, 3.5])
    >>> again = baseline_from_dict(json.loads(json.dumps(model.to_dict())))
    >>> bool((again.predict(frame) == model.predict(frame)).all())
    True
    """
    return Baseline.from_dict(data)


# --------------------------------------------------------------------------------------------
# out-of-fold predictions
# --------------------------------------------------------------------------------------------


def fit_predict_in_folds(
    model_factory: Callable[[], Any] | Any,
    frame: pd.DataFrame,
    y: Any,
    folds: Iterable[tuple[Any, Any]],
    *,
    site: str | None = "site",
    return_models: bool = False,
) -> np.ndarray | tuple[np.ndarray, list[Any]]:
    """Out-of-fold predictions: for each fold fit a fresh model on its training rows, predict its test rows.

    Parameters
    ----------
    model_factory : callable or model
        Called with no argument for a fresh unfitted model (a class such as :class:`LinearVI`,
        or ``lambda: LightUseEfficiency(min_rows=50)``); an unfitted model instance is deep-copied
        for each fold instead. Any object with ``fit(frame, y)`` and ``predict(frame)`` works.
    frame : pandas.DataFrame
        The feature frame, one row per sample.
    y : array-like or str
        Target per row, or the name of the target column.
    folds : iterable of (train_idx, test_idx)
        Positional indices, e.g. from :func:`unique_xr.models.cv.site_folds`.
    site : str or None, default "site"
        When the frame has this column, the folds are first checked with
        :func:`unique_xr.models.cv.check_no_leakage`; None skips the check.
    return_models : bool, default False
        Also return the fitted model of each fold.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, list)
        Float64 predictions, one per row, NaN for rows in no test set (and where the model gives
        NaN); with ``return_models`` also the list of fitted models, in fold order.

    Raises
    ------
    SpecError
        Leaky folds, a row in two test sets, or a target of the wrong length.
    """
    y = _target(frame, y)
    folds = [(np.asarray(tr, dtype=np.intp), np.asarray(te, dtype=np.intp)) for tr, te in folds]
    if site is not None and site in frame.columns:
        check_no_leakage(folds, frame[site].to_numpy())
    tested = np.zeros(len(frame), dtype=np.int64)
    for _, test in folds:
        np.add.at(tested, test, 1)
    if (tested > 1).any():
        raise SpecError(
            f"{int((tested > 1).sum())} row(s) are in more than one test set; out-of-fold predictions need each row "
            "tested at most once."
        )
    is_instance = hasattr(model_factory, "fit") and not isinstance(model_factory, type)
    out = np.full(len(frame), np.nan, dtype=np.float64)
    models = []
    for train, test in folds:
        model = copy.deepcopy(model_factory) if is_instance else model_factory()
        model.fit(frame.iloc[train], y[train])
        pred = np.asarray(model.predict(frame.iloc[test]), dtype=np.float64).ravel()
        if pred.size != test.size:
            raise SpecError(f"{type(model).__name__}.predict returned {pred.size} values for {test.size} rows.")
        out[test] = pred
        models.append(model)
    return (out, models) if return_models else out
