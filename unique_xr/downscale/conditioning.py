"""From coarse field and auxiliaries to the network's input channels, and back (numpy only).

The model never sees physical units: the upsampled coarse field is standardised with the
training mean and standard deviation, the target is the residual ``fine - coarse_up`` divided
by its training standard deviation, continuous auxiliaries (a DEM) are standardised, and
categorical ones (a land-cover map) become one channel per class: the fraction of each class
in the fine cell (one-hot for a map on the fine grid). These numbers are fitted once on the
training data and stored in the model card, so prediction applies exactly the same transform.

Channels, in order: standardised coarse (0 where missing), coarse validity (1/0), then the
auxiliaries in the order given, then for scheme S3 the :data:`PRIOR_CHANNELS` built from the most
recent clear fine observation before the target day (:class:`PriorFields`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unique_xr.errors import DownscaleInputError

#: Integer rasters with at most this many distinct values are read as classes.
MAX_CLASSES = 64
#: Scheme S3's conditioning channels from the prior (all 0 where a pixel has none).
PRIOR_CHANNELS = ("prior_residual", "coarse_change", "has_prior", "prior_recency", "prior_coarse_observed",
                  "doy_sin", "doy_cos")
#: Days over which the recency channel ``exp(-age / AGE_SCALE)`` of a prior falls to 1/e.
AGE_SCALE = 32.0


@dataclass(frozen=True, kw_only=True)
class AuxSpec:
    """One auxiliary layer: how it is turned into channels."""

    name: str
    kind: str  # "continuous" | "categorical"
    mean: float = 0.0
    std: float = 1.0
    classes: tuple[int, ...] = ()

    @property
    def channels(self) -> int:
        return len(self.classes) if self.kind == "categorical" else 1

    def encode(self, values: np.ndarray) -> np.ndarray:
        """``(channels, H, W)`` float32 for a ``(H, W)`` layer; missing values become 0."""
        if self.kind == "categorical":
            out = np.stack([values == c for c in self.classes]).astype(np.float32)
            return out
        out = ((np.asarray(values, dtype=np.float64) - self.mean) / self.std).astype(np.float32)
        return np.nan_to_num(out, nan=0.0)[None]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "mean": self.mean, "std": self.std, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuxSpec:
        return cls(name=d["name"], kind=d["kind"], mean=d["mean"], std=d["std"], classes=tuple(d["classes"]))

    @classmethod
    def fit(cls, name: str, values: np.ndarray, kind: str | None = None) -> AuxSpec:
        """Choose the kind (integers with few distinct values are classes) and fit its numbers."""
        values = np.asarray(values)
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values.ravel()
        if finite.size == 0:
            raise DownscaleInputError(f"Auxiliary {name!r} has no valid pixels.")
        if kind is None:
            whole = finite.size and np.all(finite == np.round(finite))
            kind = "categorical" if whole and np.unique(finite).size <= MAX_CLASSES else "continuous"
        if kind == "categorical":
            return cls(name=name, kind=kind, classes=tuple(int(c) for c in np.unique(finite)))
        if kind != "continuous":
            raise DownscaleInputError(f"Auxiliary kind must be 'continuous' or 'categorical'; got {kind!r}.")
        std = float(finite.std()) or 1.0
        return cls(name=name, kind=kind, mean=float(finite.mean()), std=std)


@dataclass(frozen=True, kw_only=True)
class PriorFields:
    """Scheme S3's prior on the fine grid: the latest clear fine value before the target day, per pixel.

    Arrays broadcast against each other (``(H, W)``, or ``(N, H, W)`` for a stack of patches).

    Attributes
    ----------
    fine
        The prior fine value (NaN: the pixel has no prior).
    coarse
        The coarse field of the prior's day at the pixel, on the fine grid (observed, or the fine
        prior's own coarse-cell mean: :func:`unique_xr.downscale.prior.cell_mean_on_fine`).
    age
        Days from the prior's day to the target day (> 0).
    observed
        1 where ``coarse`` is the observed coarse field of the prior's day, 0 where it is the fine
        prior's own cell mean.
    doy
        Day of year of the target day (1-366).
    """

    fine: np.ndarray
    coarse: np.ndarray
    age: np.ndarray
    observed: np.ndarray | float
    doy: np.ndarray | float

    def detail(self) -> tuple[np.ndarray, np.ndarray]:
        """``(detail, has)``: the prior's sub-coarse detail ``fine - coarse`` (0 without a prior) and where it exists."""
        fine, coarse, age = (np.asarray(a, dtype=np.float64) for a in (self.fine, self.coarse, self.age))
        has = np.isfinite(fine) & np.isfinite(coarse) & np.isfinite(age) & (age >= 0)
        with np.errstate(invalid="ignore"):
            return np.where(has, fine - coarse, 0.0), has

    def channels(self, norm: Normalisation, coarse_up: np.ndarray) -> np.ndarray:
        """The :data:`PRIOR_CHANNELS` ``(7, ...)`` float32 for ``coarse_up`` of the target day."""
        coarse, age = (np.asarray(a, dtype=np.float64) for a in (self.coarse, self.age))
        detail, has = self.detail()
        shape = np.broadcast_shapes(np.shape(coarse_up), has.shape)
        today = np.isfinite(coarse_up)
        with np.errstate(invalid="ignore", over="ignore"):
            resid = detail / norm.residual_std
            change = np.where(has & today, (np.asarray(coarse_up, np.float64) - coarse) / norm.field_std, 0.0)
            recency = np.where(has, np.exp(-np.clip(age, 0, None) / AGE_SCALE), 0.0)
        observed = np.where(has, np.asarray(self.observed, np.float64), 0.0)
        angle = 2 * np.pi * np.asarray(self.doy, np.float64) / 365.25
        parts = [resid, change, has, recency, observed, np.sin(angle), np.cos(angle)]
        return np.stack([np.broadcast_to(p, shape) for p in parts]).astype(np.float32)


@dataclass(frozen=True, kw_only=True)
class Normalisation:
    """Standardisation of the field, its residual and the auxiliaries (stored in the model card)."""

    field_mean: float
    field_std: float
    residual_std: float
    aux: tuple[AuxSpec, ...] = field(default_factory=tuple)
    #: Scheme S3: the conditioning ends with the :data:`PRIOR_CHANNELS`.
    prior: bool = False
    #: Scheme S3, the fusion base: the network's residual is added to the upsampled coarse field plus
    #: ``prior_weight * exp(-age / prior_decay)`` times the prior's sub-coarse detail (:meth:`base`);
    #: fitted by least squares on the training pairs (:func:`unique_xr.downscale.prior.fit_prior_gain`).
    #: 0 (S3 models without a fusion base): the residual is added to the coarse field alone.
    prior_weight: float = 0.0
    #: Days over which the fusion base's weight falls to 1/e (``inf``: no decay).
    prior_decay: float = float("inf")

    @property
    def cond_channels(self) -> int:
        return 2 + sum(a.channels for a in self.aux) + (len(PRIOR_CHANNELS) if self.prior else 0)

    def conditioning(self, coarse_up: np.ndarray, aux: list[np.ndarray] | tuple = (),
                     prior: PriorFields | None = None) -> np.ndarray:
        """``(C, H, W)`` float32 network conditioning from the upsampled coarse field and auxiliaries.

        For a model with prior channels (scheme S3), ``prior`` gives them; None means no pixel has a
        prior (all prior channels 0 but the day of year, which then must come from ``prior`` too:
        pass ``PriorFields`` with all-NaN ``fine`` to say "no prior" on a known day).
        """
        if len(aux) != len(self.aux):
            names = [a.name for a in self.aux]
            raise DownscaleInputError(
                f"The model was trained with {len(self.aux)} auxiliary layer(s) {names}; got {len(aux)}. "
                "Pass the same auxiliaries, in the same order, as at training."
            )
        valid = np.isfinite(coarse_up)
        z = np.where(valid, (coarse_up - self.field_mean) / self.field_std, 0.0).astype(np.float32)
        parts = [z[None], valid.astype(np.float32)[None]]
        for spec, values in zip(self.aux, aux):
            if np.shape(values) != coarse_up.shape:
                raise DownscaleInputError(
                    f"Auxiliary {spec.name!r} has shape {np.shape(values)}, the fine grid {coarse_up.shape}: "
                    "auxiliaries must be on the fine grid."
                )
            parts.append(spec.encode(values))
        if self.prior:
            if prior is None:
                raise DownscaleInputError("A scheme-s3 model conditions on a prior and the target day: pass "
                                          "PriorFields (all-NaN fine for a day without any prior).")
            parts.append(prior.channels(self, coarse_up))
        return np.concatenate(parts, axis=0)

    def residual(self, fine: np.ndarray, coarse_up: np.ndarray) -> np.ndarray:
        """Standardised training target (NaN where fine or coarse is missing)."""
        return ((fine - coarse_up) / self.residual_std).astype(np.float32)

    def to_field(self, residual: np.ndarray, coarse_up: np.ndarray) -> np.ndarray:
        """Physical field from a standardised residual (NaN where the coarse field is missing)."""
        return (coarse_up + self.residual_std * residual).astype(np.float32)

    def prior_gain(self, age: np.ndarray) -> np.ndarray:
        """The fusion base's weight of a prior ``age`` days old (0 where there is none)."""
        age = np.asarray(age, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            gain = self.prior_weight * np.exp(-np.clip(age, 0, None) / self.prior_decay)
        return np.where(np.isfinite(gain), gain, 0.0)

    def base(self, coarse_up: np.ndarray, prior: PriorFields | None) -> np.ndarray:
        """The field the network's residual is added to (what :meth:`to_field` takes as ``coarse_up``).

        S1/S2 (and S3 without a fusion base): the upsampled coarse field. S3: plus the weighted
        sub-coarse detail of the prior (naive fusion, damped with the prior's age), so the
        network learns only the correction to "prior detail + today's coarse field"; pixels
        without a prior get the coarse field alone. NaN where the coarse field is missing.
        """
        up = np.asarray(coarse_up, dtype=np.float32)
        if not self.prior or prior is None or self.prior_weight == 0:
            return up
        detail, _ = prior.detail()
        return (up + self.prior_gain(prior.age) * detail).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        out = {"field_mean": self.field_mean, "field_std": self.field_std, "residual_std": self.residual_std,
               "aux": [a.to_dict() for a in self.aux]}
        if self.prior:  # only then: S1/S2 cards (and their tokens) stay as they were
            out["prior"] = True
            if self.prior_weight:
                out["prior_weight"] = self.prior_weight
                out["prior_decay"] = None if np.isinf(self.prior_decay) else self.prior_decay
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalisation:
        decay = d.get("prior_decay")
        return cls(field_mean=d["field_mean"], field_std=d["field_std"], residual_std=d["residual_std"],
                   aux=tuple(AuxSpec.from_dict(a) for a in d["aux"]), prior=bool(d.get("prior", False)),
                   prior_weight=float(d.get("prior_weight", 0.0)),
                   prior_decay=float("inf") if decay is None else float(decay))

    @classmethod
    def fit(cls, coarse_up: list[np.ndarray], fine: list[np.ndarray], aux: list[np.ndarray] = (),
            aux_names: list[str] | None = None, aux_kinds: list[str | None] | None = None,
            prior: bool = False) -> Normalisation:
        """Fit on training pairs (lists of ``(H, W)`` arrays on the fine grid)."""
        c = np.concatenate([np.ravel(a) for a in coarse_up]).astype(np.float64)
        r = np.concatenate([np.ravel(f - a) for f, a in zip(fine, coarse_up)]).astype(np.float64)
        c, r = c[np.isfinite(c)], r[np.isfinite(r)]
        if r.size == 0:
            raise DownscaleInputError("No pixel is valid in both the coarse and the fine training images.")
        names = aux_names or [f"aux{i}" for i in range(len(aux))]
        kinds = aux_kinds or [None] * len(aux)
        specs = tuple(AuxSpec.fit(n, a, k) for n, a, k in zip(names, aux, kinds))
        return cls(field_mean=float(c.mean()), field_std=float(c.std()) or 1.0,
                   residual_std=float(r.std()) or 1.0, aux=specs, prior=prior)


def _axis_bilinear(fine_index: np.ndarray, factor: int, n_coarse: int, origin: int):
    """Neighbour indices (local to a window starting at ``origin``) and weights along one axis."""
    u = np.clip((fine_index + 0.5) / factor - 0.5, 0, n_coarse - 1)
    i0 = np.minimum(np.floor(u).astype(np.int64), max(n_coarse - 2, 0))
    w = (u - i0).astype(np.float64)
    i1 = np.minimum(i0 + 1, n_coarse - 1)
    return i0 - origin, i1 - origin, w


def upsample_bilinear(coarse: np.ndarray, factor: int, *, rows=None, cols=None, origin=(0, 0),
                      coarse_shape=None) -> np.ndarray:
    """Bilinear interpolation between coarse pixel centres onto nested fine pixels.

    Fine pixel ``i`` has centre ``(i + 0.5) / factor - 0.5`` in coarse pixel units; beyond
    the outermost coarse centres the edge value is held. ``coarse`` may be a window of a larger
    coarse grid (``coarse_shape``) starting at ``origin``; ``rows``/``cols`` are global fine
    indices (default: the whole nested grid). Missing coarse pixels are filled from the nearest
    valid one before interpolating and set back to NaN over their own footprint.

    Examples
    --------
    >>> upsample_bilinear(np.array([[0.0, 2.0]]), 2)
    array([[0. , 0.5, 1.5, 2. ],
           [0. , 0.5, 1.5, 2. ]], dtype=float32)
    """
    coarse = np.asarray(coarse, dtype=np.float64)
    ny, nx = coarse_shape or coarse.shape
    rows = np.arange(ny * factor) if rows is None else np.asarray(rows)
    cols = np.arange(nx * factor) if cols is None else np.asarray(cols)
    missing = ~np.isfinite(coarse)
    filled = fill_nearest(coarse) if missing.any() else coarse
    r0, r1, wr = _axis_bilinear(rows, factor, ny, origin[0])
    c0, c1, wc = _axis_bilinear(cols, factor, nx, origin[1])
    top = filled[r0][:, c0] * (1 - wc) + filled[r0][:, c1] * wc
    bottom = filled[r1][:, c0] * (1 - wc) + filled[r1][:, c1] * wc
    out = top * (1 - wr)[:, None] + bottom * wr[:, None]
    if missing.any():
        out[block_replicate(missing, factor, rows=rows, cols=cols, origin=origin)] = np.nan
    return out.astype(np.float32)


def block_replicate(coarse: np.ndarray, factor: int, *, rows=None, cols=None, origin=(0, 0)) -> np.ndarray:
    """Each fine pixel gets the value of the coarse pixel containing it (global fine indices)."""
    coarse = np.asarray(coarse)
    rows = np.arange(coarse.shape[0] * factor) if rows is None else np.asarray(rows)
    cols = np.arange(coarse.shape[1] * factor) if cols is None else np.asarray(cols)
    return coarse[(rows // factor - origin[0])][:, (cols // factor - origin[1])]


def fill_nearest(values: np.ndarray) -> np.ndarray:
    """Replace NaN by the nearest finite value (all-NaN stays NaN)."""
    missing = ~np.isfinite(values)
    if not missing.any() or missing.all():
        return values
    from scipy.ndimage import distance_transform_edt

    idx = distance_transform_edt(missing, return_distances=False, return_indices=True)
    return values[tuple(idx)]


def conserve_mass(values: np.ndarray, coarse_block: np.ndarray, factor: int) -> np.ndarray:
    """Shift ``values`` (``(..., H, W)``, H and W multiples of ``factor``) so each k x k cell mean equals the coarse value.

    ``coarse_block`` is the coarse value replicated onto the fine grid (:func:`block_replicate`).
    Cell means count only finite pixels; cells without any stay as they are.

    Examples
    --------
    >>> f = np.array([[1.0, 3.0], [5.0, 7.0]])
    >>> conserve_mass(f, np.full((2, 2), 2.0), 2)
    array([[-1.,  1.],
           [ 3.,  5.]])
    """
    h, w = values.shape[-2:]
    if h % factor or w % factor:
        raise DownscaleInputError(f"Mass conservation needs sides that are multiples of {factor}; got {h} x {w}.")
    lead = values.shape[:-2]
    cells = values.reshape(*lead, h // factor, factor, w // factor, factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells
        means = np.nanmean(cells, axis=(-3, -1))
    target = coarse_block[..., ::factor, ::factor]
    shift = np.where(np.isfinite(means) & np.isfinite(target), target - means, 0.0)
    return values + np.repeat(np.repeat(shift, factor, axis=-2), factor, axis=-1)

