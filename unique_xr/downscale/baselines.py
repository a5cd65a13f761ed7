r"""What a downscaler has to beat: cubic upsampling and linear regressions on the coarse field.

The coarse grid is nested in the fine one: coarse pixel ``(I, J)`` is the ``k x k`` block of
fine pixels ``(k I .. k I + k - 1, k J .. k J + k - 1)``, aligned at the top-left corner.
:func:`block_mean` is the aggregation operator (fine -> coarse), :func:`bicubic` the plain
upsampling (coarse -> fine) and :class:`RegressionBaseline` a per-class linear correction of the
upsampled field fitted across training dates,

.. math::

    \hat f = a_c + b_c\,\tilde c + \textstyle\sum_j g_{c,j}\,z_j,

where :math:`\tilde c` is the upsampled coarse field, :math:`c` the class of the fine pixel and
:math:`z_j` optional continuous auxiliaries (elevation, say). Classes with too few training
pixels use the global fit. Numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from unique_xr._optional import import_optional
from unique_xr.downscale.conditioning import block_replicate, fill_nearest
from unique_xr.errors import SpecError

__all__ = ["RegressionBaseline", "bicubic", "block_mean", "linear_baseline"]


def _factor(factor: Any) -> int:
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise SpecError(f"factor must be a positive integer (fine pixels per coarse pixel side); got {factor!r}.")
    return int(factor)


def _image(a: Any, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise SpecError(f"{name} must be a 2-D (y, x) array; got shape {a.shape}.")
    return a


def block_mean(fine: Any, factor: int) -> np.ndarray:
    """Mean of each ``factor x factor`` block of a fine 2-D array, ignoring NaN.

    The coarse pixel is NaN only where its whole block is. A fine grid that is not a whole
    number of blocks gets partial blocks on the bottom and right edges (means of what is there).

    Parameters
    ----------
    fine : array-like, 2-D
        Fine-grid field; NaN marks missing pixels.
    factor : int
        Fine pixels per coarse pixel side.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(ceil(ny / factor), ceil(nx / factor))``.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.downscale.baselines import block_mean
    >>> fine = np.array([[1.0, 3.0, 5.0, np.nan],
    ...                  [1.0, 3.0, np.nan, np.nan]])
    >>> block_mean(fine, 2)
    array([[2., 5.]])
    """
    k = _factor(factor)
    fine = _image(fine, "fine")
    ny, nx = fine.shape
    cy, cx = -(-ny // k), -(-nx // k)
    padded = np.full((cy * k, cx * k), np.nan)
    padded[:ny, :nx] = fine
    blocks = padded.reshape(cy, k, cx, k)
    ok = np.isfinite(blocks)
    count = ok.sum(axis=(1, 3))
    total = np.where(ok, blocks, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def bicubic(coarse: Any, factor: int, *, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Upsample a nested coarse 2-D field to the fine grid by cubic interpolation between centres.

    Fine pixel centre ``i`` lies at coarse coordinate ``(i + 0.5) / factor - 0.5`` (coarse pixel
    centres at integers), and the value there is the cubic-spline interpolant of the coarse
    pixels (:func:`scipy.ndimage.map_coordinates`, ``order=3``, edges continued by the nearest
    pixel). Missing coarse pixels are first filled from the nearest valid one, so a gap does not
    spread NaN over its neighbours, then put back as NaN on the fine pixels they cover.

    Parameters
    ----------
    coarse : array-like, 2-D
        Coarse field; NaN marks missing pixels.
    factor : int
        Fine pixels per coarse pixel side.
    shape : (int, int), optional
        Fine-grid shape; default ``(factor * ny, factor * nx)``. A smaller shape crops the bottom
        and right edges (for fine grids that are not a whole number of coarse pixels).

    Returns
    -------
    numpy.ndarray
        float64 of the fine shape; all NaN if the coarse field is.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.downscale.baselines import bicubic
    >>> coarse = np.array([[1.0, 1.0], [1.0, np.nan]])
    >>> bicubic(coarse, 2)
    array([[ 1.,  1.,  1.,  1.],
           [ 1.,  1.,  1.,  1.],
           [ 1.,  1., nan, nan],
           [ 1.,  1., nan, nan]])
    """
    k = _factor(factor)
    coarse = _image(coarse, "coarse")
    cy, cx = coarse.shape
    ny, nx = (cy * k, cx * k) if shape is None else (int(shape[0]), int(shape[1]))
    if ny < 1 or nx < 1:
        raise SpecError(f"shape must be positive; got {shape}.")
    ok = np.isfinite(coarse)
    if not ok.any():
        return np.full((ny, nx), np.nan)
    ndimage = import_optional("scipy.ndimage", purpose="bicubic upsampling")
    rows = (np.arange(ny) + 0.5) / k - 0.5
    cols = (np.arange(nx) + 0.5) / k - 0.5
    grid = np.meshgrid(rows, cols, indexing="ij")
    out = ndimage.map_coordinates(fill_nearest(coarse), grid, order=3, mode="nearest")
    if not ok.all():  # fine pixels beyond the last coarse pixel belong to it
        inside_rows, inside_cols = np.minimum(np.arange(ny), cy * k - 1), np.minimum(np.arange(nx), cx * k - 1)
        out[~block_replicate(ok, k, rows=inside_rows, cols=inside_cols)] = np.nan
    return out


class RegressionBaseline:
    """Per-class linear regression of the fine field on the upsampled coarse field (and auxiliaries).

    For each class ``c`` it fits, by least squares over every training date's finite pixels,
    ``fine ~ a_c + b_c * coarse_up + sum_j g_cj * aux_j``. A class with fewer than
    ``min_pixels`` training pixels (or none, or a class first seen at prediction time) uses the
    global fit over all classes.

    Parameters
    ----------
    min_pixels : int
        Fewest training pixels for a class to get its own coefficients.

    Attributes
    ----------
    coef_ : dict
        Class -> coefficient vector ``[a, b, g_1, ...]``; key ``None`` holds the global fit.
    n_aux_ : int
        Number of auxiliary fields the model was fitted with.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.downscale.baselines import RegressionBaseline
    >>> up = np.arange(16.0).reshape(4, 4)
    >>> classes = np.repeat([[1, 2]], 4, axis=0).repeat(2, axis=1)   # left half 1, right half 2
    >>> fine = np.where(classes == 1, 1.0 + 2.0 * up, 3.0 - up)
    >>> model = RegressionBaseline(min_pixels=4).fit([up], [fine], classes=classes)
    >>> np.round(model.coef_[1], 6).tolist(), np.round(model.coef_[2], 6).tolist()
    ([1.0, 2.0], [3.0, -1.0])
    >>> bool(np.allclose(model.predict(up, classes=classes), fine))
    True
    """

    def __init__(self, *, min_pixels: int = 50):
        if min_pixels < 1:
            raise SpecError(f"min_pixels must be at least 1; got {min_pixels}.")
        self.min_pixels = int(min_pixels)
        self.coef_: dict[Any, np.ndarray] = {}
        self.n_aux_ = 0

    @staticmethod
    def _aux_list(aux: Any, shape: tuple[int, ...]) -> list[np.ndarray]:
        if aux is None:
            return []
        arrays = [aux] if np.ndim(aux) == 2 else list(aux)
        out = [_image(a, "aux") for a in arrays]
        for a in out:
            if a.shape != shape:
                raise SpecError(f"every aux field must be on the fine grid {shape}; got {a.shape}.")
        return out

    @staticmethod
    def _classes(classes: Any, shape: tuple[int, ...]) -> np.ndarray | None:
        if classes is None:
            return None
        classes = np.asarray(classes)
        if classes.shape != shape:
            raise SpecError(f"classes must be on the fine grid {shape}; got {classes.shape}.")
        return classes

    def _design(self, coarse_up: np.ndarray, aux: list[np.ndarray]) -> np.ndarray:
        return np.stack([np.ones_like(coarse_up), coarse_up, *aux], axis=-1)

    def fit(
        self,
        coarse_up_list: Sequence[Any],
        fine_list: Sequence[Any],
        classes: Any = None,
        aux: Any = None,
    ) -> RegressionBaseline:
        """Fit on paired training dates.

        Parameters
        ----------
        coarse_up_list, fine_list : sequences of 2-D arrays
            Upsampled coarse field and fine truth of each training date, all on the fine grid.
        classes : 2-D integer array, optional
            Class of each fine pixel (static: the same for every date). None fits one class.
        aux : 2-D array or sequence of 2-D arrays, optional
            Static continuous auxiliaries on the fine grid.

        Returns
        -------
        RegressionBaseline
            ``self``, fitted.
        """
        if len(coarse_up_list) != len(fine_list) or not len(fine_list):
            raise SpecError(
                f"need as many coarse as fine training fields, at least one; got {len(coarse_up_list)} "
                f"and {len(fine_list)}."
            )
        rows, targets, labels = [], [], []
        shape = None
        for coarse_up, fine in zip(coarse_up_list, fine_list, strict=True):
            coarse_up, fine = _image(coarse_up, "coarse_up"), _image(fine, "fine")
            if coarse_up.shape != fine.shape or (shape is not None and fine.shape != shape):
                raise SpecError(
                    f"every coarse_up and fine field must share one fine grid; got {coarse_up.shape} and {fine.shape}."
                )
            shape = fine.shape
            aux_fields = self._aux_list(aux, shape)
            design = self._design(coarse_up, aux_fields)
            ok = np.isfinite(fine) & np.isfinite(design).all(axis=-1)
            rows.append(design[ok])
            targets.append(fine[ok])
            cls = self._classes(classes, shape)
            labels.append(cls[ok] if cls is not None else np.zeros(int(ok.sum()), dtype=np.int64))
        x, y, c = np.concatenate(rows), np.concatenate(targets), np.concatenate(labels)
        if len(y) < x.shape[1]:
            raise SpecError(f"only {len(y)} training pixels are finite in both fields; need at least {x.shape[1]}.")
        self.n_aux_ = x.shape[1] - 2
        self.coef_ = {None: np.linalg.lstsq(x, y, rcond=None)[0]}
        if classes is not None:
            for value in np.unique(c):
                sel = c == value
                if sel.sum() >= max(self.min_pixels, x.shape[1]):
                    self.coef_[value.item()] = np.linalg.lstsq(x[sel], y[sel], rcond=None)[0]
        return self

    def predict(self, coarse_up: Any, classes: Any = None, aux: Any = None) -> np.ndarray:
        """Fine-grid prediction from an upsampled coarse field (NaN where an input is NaN).

        Parameters are those of :meth:`fit` for one date; ``classes`` and ``aux`` must be given
        exactly when they were given to :meth:`fit`.
        """
        if not self.coef_:
            raise SpecError("RegressionBaseline is not fitted: call .fit(...) first.")
        coarse_up = _image(coarse_up, "coarse_up")
        aux_fields = self._aux_list(aux, coarse_up.shape)
        if len(aux_fields) != self.n_aux_:
            raise SpecError(f"the model was fitted with {self.n_aux_} aux fields; got {len(aux_fields)}.")
        design = self._design(coarse_up, aux_fields)
        out = design @ self.coef_[None]
        cls = self._classes(classes, coarse_up.shape)
        if cls is not None:
            for value, coef in self.coef_.items():
                if value is not None:
                    sel = cls == value
                    out[sel] = design[sel] @ coef
        return out


def linear_baseline(coarse_up_list: Sequence[Any], fine_list: Sequence[Any], aux: Any = None) -> RegressionBaseline:
    """One linear regression ``fine ~ a + b * coarse_up (+ aux)`` for all pixels, fitted across dates.

    The single-class form of :class:`RegressionBaseline`, returned fitted.

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.downscale.baselines import linear_baseline
    >>> up = np.arange(9.0).reshape(3, 3)
    >>> model = linear_baseline([up], [0.5 * up + 1.0])
    >>> np.round(model.coef_[None], 6).tolist()
    [1.0, 0.5]
    """
    return RegressionBaseline().fit(coarse_up_list, fine_list, aux=aux)
