"""Vegetation indices: numpy kernels and lazy xarray wrappers.

Kernels (:func:`ndvi`, :func:`evi`, :func:`evi2`, :func:`nirv`, :func:`kndvi`, :func:`lswi`)
take surface-reflectance arrays (unitless, after scale/offset), know nothing of xarray or Dask,
and return float32 with NaN where an input is NaN or the denominator is 0. They compute in the
inputs' precision (at least float32) and cast the result to float32.

:func:`compute_index` and :func:`add_indices` take a cube whose bands are named by role
(``blue``, ``red``, ``nir``, ``swir1``, see :mod:`unique_xr.search.collections`), so the same
call works for MODIS and Landsat, and run the kernels block by block with
:func:`xarray.apply_ufunc` — lazily on Dask input.

Unit guard. Reflectance left as raw DN is the most common mistake; it is caught two ways,
neither of which computes anything at graph-building time: an integer band is refused at once
(after scale/offset reflectance is always float), and inside each block the median of (a strided
sample of at most 65,536 of) the finite values must lie in the valid reflectance range of
:mod:`unique_xr.schema` — on numpy input that check runs immediately, on Dask input when each
block is computed, raising :class:`~unique_xr.errors.UnitsError` before any result of that block
is returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import xarray as xr

from unique_xr import schema
from unique_xr._jit import jit, ufunc
from unique_xr.errors import SpecError, UnitsError

__all__ = [
    "INDEX_CODES", "INDICES", "add_indices", "compute_index", "evi", "evi2", "evi2_value", "evi_value", "index_attrs",
    "index_into", "kndvi", "kndvi_value", "lswi", "nd_value", "ndvi", "nirv", "nirv_value",
]

#: EVI coefficients of the MODIS algorithm (Huete et al. 2002).
EVI_G, EVI_C1, EVI_C2, EVI_L = 2.5, 6.0, 7.5, 1.0

# --------------------------------------------------------------------------------------------
# the formulas, once: scalar functions compiled with numba. Fused kernels elsewhere (the model
# features, the loader) call the ``*_value`` functions inside their loops; the numpy kernels below
# are ufuncs made from the same Python functions. NaN in, NaN out; a zero denominator gives NaN.


def _nd(a, b):
    s = a + b
    if s == 0:
        return np.nan
    return (a - b) / s


def _evi(blue, red, nir):
    den = nir + EVI_C1 * red - EVI_C2 * blue + EVI_L
    if den == 0:
        return np.nan
    return EVI_G * (nir - red) / den


def _evi2(red, nir):
    den = nir + 2.4 * red + 1.0
    if den == 0:
        return np.nan
    return 2.5 * (nir - red) / den


nd_value = jit(_nd)  #: ``(a - b) / (a + b)``: NDVI is ``nd_value(nir, red)``, LSWI ``nd_value(nir, swir1)``
evi_value = jit(_evi)  #: EVI of one pixel (blue, red, nir)
evi2_value = jit(_evi2)  #: EVI2 of one pixel (red, nir)


@jit
def nirv_value(red, nir):
    """NIRv of one pixel: NDVI x NIR."""
    return nd_value(nir, red) * nir


@jit
def kndvi_value(red, nir):
    """kNDVI of one pixel: tanh(NDVI^2)."""
    return np.tanh(nd_value(nir, red) ** 2)


def kndvi_from_ndvi_squared(ndvi_sq: np.ndarray) -> np.ndarray:
    """kNDVI from NDVI^2 with numpy's tanh, in place (float64): the values of the numpy kernels,
    bit for bit (numba's tanh can differ from numpy's by one ulp)."""
    return np.tanh(ndvi_sq, out=ndvi_sq)


#: Index name -> the code :func:`index_into` takes (fused kernels pass codes, not names).
INDEX_CODES: dict[str, int] = {"ndvi": 0, "evi": 1, "evi2": 2, "nirv": 3, "kndvi": 4, "lswi": 5}


@jit
def index_into(code, x0, x1, x2, out):
    """Index ``code`` (:data:`INDEX_CODES`) of every pixel of 1-D float arrays into ``out``; ``x0, x1, x2``
    are its bands in the order of ``INDICES[name].bands`` (unused ones are ignored). The per-array
    dispatch fused kernels call: the branch is taken once, the loop runs on the scalar formula."""
    n = out.size
    if code == 0:
        for i in range(n):
            out[i] = nd_value(x1[i], x0[i])
    elif code == 1:
        for i in range(n):
            out[i] = evi_value(x0[i], x1[i], x2[i])
    elif code == 2:
        for i in range(n):
            out[i] = evi2_value(x0[i], x1[i])
    elif code == 3:
        for i in range(n):
            out[i] = nirv_value(x0[i], x1[i])
    elif code == 4:
        for i in range(n):
            out[i] = kndvi_value(x0[i], x1[i])
    else:
        for i in range(n):
            out[i] = nd_value(x0[i], x1[i])


_ND_UFUNC = ufunc(_nd, 2)
_EVI_UFUNC = ufunc(_evi, 3)
_EVI2_UFUNC = ufunc(_evi2, 2)


def _as_float(*arrays: np.ndarray) -> list[np.ndarray]:
    arrays = [np.asarray(a) for a in arrays]
    dtype = np.result_type(*arrays, np.float32)
    return [a.astype(dtype, copy=False) for a in arrays]


def ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    r"""Normalized difference vegetation index (Rouse et al. 1974).

    .. math::

        \mathrm{NDVI} = \frac{\rho_{nir} - \rho_{red}}{\rho_{nir} + \rho_{red}}

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.features.indices import ndvi
    >>> ndvi(np.array([0.05, 0.0]), np.array([0.45, 0.0])).tolist()
    [0.800000011920929, nan]
    """
    red, nir = _as_float(red, nir)
    return _ND_UFUNC(nir, red).astype(np.float32, copy=False)


def evi(blue: np.ndarray, red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    r"""Enhanced vegetation index, MODIS coefficients (Huete et al. 2002).

    .. math::

        \mathrm{EVI} = G \, \frac{\rho_{nir} - \rho_{red}}
                                 {\rho_{nir} + C_1 \rho_{red} - C_2 \rho_{blue} + L},
        \qquad G = 2.5,\; C_1 = 6,\; C_2 = 7.5,\; L = 1

    Not clipped: bright targets (snow, cloud) can push it outside [-1, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.features.indices import evi
    >>> round(float(evi(np.array([0.02]), np.array([0.04]), np.array([0.40]))[0]), 6)
    0.604027
    """
    blue, red, nir = _as_float(blue, red, nir)
    return _EVI_UFUNC(blue, red, nir).astype(np.float32, copy=False)


def evi2(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    r"""Two-band EVI, without the blue band (Jiang et al. 2008).

    .. math::

        \mathrm{EVI2} = 2.5 \, \frac{\rho_{nir} - \rho_{red}}{\rho_{nir} + 2.4 \rho_{red} + 1}

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.features.indices import evi2
    >>> round(float(evi2(np.array([0.05]), np.array([0.45]))[0]), 6)
    0.636943
    """
    red, nir = _as_float(red, nir)
    return _EVI2_UFUNC(red, nir).astype(np.float32, copy=False)


def nirv(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    r"""Near-infrared reflectance of vegetation (Badgley et al. 2017, Sci. Adv. 3:e1602244).

    .. math::

        \mathrm{NIR_v} = \mathrm{NDVI} \cdot \rho_{nir}

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.features.indices import nirv
    >>> round(float(nirv(np.array([0.05]), np.array([0.45]))[0]), 6)
    0.36
    """
    red, nir = _as_float(red, nir)
    with np.errstate(invalid="ignore"):
        return (ndvi(red, nir) * nir).astype(np.float32, copy=False)


def kndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    r"""Kernel NDVI (Camps-Valls et al. 2021, Sci. Adv. 7:eabc7447), RBF kernel with
    :math:`\sigma = \tfrac12(\rho_{nir} + \rho_{red})`.

    .. math::

        k = \exp\!\left(-\frac{(\rho_{nir} - \rho_{red})^2}{2\sigma^2}\right), \qquad
        \mathrm{kNDVI} = \frac{1 - k}{1 + k} = \tanh\!\left(\mathrm{NDVI}^2\right)

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.features.indices import kndvi
    >>> round(float(kndvi(np.array([0.05]), np.array([0.45]))[0]), 6)
    0.5649
    """
    return np.tanh(ndvi(red, nir) ** 2).astype(np.float32, copy=False)


def lswi(nir: np.ndarray, swir1: np.ndarray) -> np.ndarray:
    r"""Land surface water index (Xiao et al. 2004), with SWIR near 1.6 um.

    .. math::

        \mathrm{LSWI} = \frac{\rho_{nir} - \rho_{swir1}}{\rho_{nir} + \rho_{swir1}}

    Examples
    --------
    >>> import numpy as np
    >>> from unique_xr.features.indices import lswi
    >>> round(float(lswi(np.array([0.45]), np.array([0.15]))[0]), 6)
    0.5
    """
    nir, swir1 = _as_float(nir, swir1)
    return _ND_UFUNC(nir, swir1).astype(np.float32, copy=False)


@dataclass(frozen=True, kw_only=True)
class IndexDef:
    """A vegetation index: its kernel, the band roles it takes (in order) and its formula."""

    name: str
    kernel: Callable[..., np.ndarray]
    bands: tuple[str, ...]
    formula: str
    reference: str


#: Every index :func:`add_indices` knows, by canonical name.
INDICES: dict[str, IndexDef] = {
    d.name: d
    for d in (
        IndexDef(name="ndvi", kernel=ndvi, bands=("red", "nir"), formula="(nir - red) / (nir + red)",
                 reference="Rouse et al. 1974"),
        IndexDef(name="evi", kernel=evi, bands=("blue", "red", "nir"),
                 formula="2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1)", reference="Huete et al. 2002"),
        IndexDef(name="evi2", kernel=evi2, bands=("red", "nir"), formula="2.5 * (nir - red) / (nir + 2.4 * red + 1)",
                 reference="Jiang et al. 2008"),
        IndexDef(name="nirv", kernel=nirv, bands=("red", "nir"), formula="ndvi * nir",
                 reference="Badgley et al. 2017, doi:10.1126/sciadv.1602244"),
        IndexDef(name="kndvi", kernel=kndvi, bands=("red", "nir"), formula="tanh(ndvi ** 2)",
                 reference="Camps-Valls et al. 2021, doi:10.1126/sciadv.abc7447"),
        IndexDef(name="lswi", kernel=lswi, bands=("nir", "swir1"), formula="(nir - swir1) / (nir + swir1)",
                 reference="Xiao et al. 2004"),
    )
}

def _check_reflectance(values: np.ndarray, band: str, index: str) -> None:
    schema.check_range(schema.sample_for_check(values), band, what=f"{index.upper()} input band {band!r}")


def _checked_block(*bands: np.ndarray, kernel: Callable[..., np.ndarray], roles: tuple[str, ...], index: str,
                   check_units: bool) -> np.ndarray:
    """Run ``kernel`` on one block, after the per-block unit check."""
    if check_units:
        for values, role in zip(bands, roles):
            _check_reflectance(values, role, index)
    return kernel(*bands)


def _index_def(name: str) -> IndexDef:
    try:
        return INDICES[name]
    except KeyError:
        raise SpecError(f"Unknown vegetation index {name!r}; choose from {sorted(INDICES)}.") from None


def compute_index(ds: xr.Dataset, name: str, *, check_units: bool = True) -> xr.DataArray:
    """One vegetation index from the role-named bands of ``ds``, lazily on Dask input.

    Parameters
    ----------
    ds : xarray.Dataset
        Surface reflectance (unitless, after scale/offset) with bands named by role.
    name : str
        One of :data:`INDICES`: ``ndvi``, ``evi``, ``evi2``, ``nirv``, ``kndvi``, ``lswi``.
    check_units : bool
        Refuse integer bands at once and, per block, bands whose median is outside the
        reflectance range (see the module docstring).

    Returns
    -------
    xarray.DataArray
        float32, named ``name``, with the CF attributes of :func:`unique_xr.schema.cf_attrs`,
        the formula, and the input's ``grid_mapping``.

    Raises
    ------
    MissingVariableError
        A band the index needs is not in ``ds``.
    UnitsError
        A band is integer (raw DN) or its values are not reflectance.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from unique_xr.features.indices import compute_index
    >>> ds = xr.Dataset({"red": ("x", np.float32([0.05, 0.1])), "nir": ("x", np.float32([0.45, 0.3]))})
    >>> compute_index(ds, "ndvi").round(4).values
    array([0.8, 0.5], dtype=float32)
    """
    spec = _index_def(name)
    schema.require_variables(ds, spec.bands, purpose=name.upper())
    bands = [ds[b] for b in spec.bands]
    if check_units:
        for band in bands:
            if band.dtype.kind in "iub":
                raise UnitsError(
                    f"{name.upper()} input band {band.name!r} has integer dtype {band.dtype}: it looks like raw "
                    "DN, not reflectance. Apply the collection's scale/offset first (unique_xr.load does this), "
                    "or pass float reflectance."
                )
    out = xr.apply_ufunc(
        _checked_block, *bands,
        kwargs={"kernel": spec.kernel, "roles": spec.bands, "index": name, "check_units": check_units},
        dask="parallelized", output_dtypes=[np.float32],
    )
    return out.rename(name).assign_attrs(index_attrs(name, bands[0]))


def index_attrs(name: str, band: xr.DataArray) -> dict:
    """CF attributes of index ``name`` (formula, reference) and the ``grid_mapping`` of its input ``band``."""
    spec = _index_def(name)
    attrs = schema.cf_attrs(name, formula=spec.formula, references=spec.reference)
    grid_mapping = band.attrs.get("grid_mapping")
    if grid_mapping is not None:
        attrs["grid_mapping"] = grid_mapping
    return attrs


def add_indices(
    ds: xr.Dataset, names: str | Iterable[str] = ("ndvi", "evi"), *, check_units: bool = True
) -> xr.Dataset:
    """Return ``ds`` with the vegetation indices ``names`` added as float32 variables.

    All names are validated (known index, bands present) before anything is built. Lazy on
    Dask input. See :func:`compute_index` for ``check_units``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from unique_xr.features.indices import add_indices
    >>> ds = xr.Dataset({"red": ("x", np.float32([0.05])), "nir": ("x", np.float32([0.45]))})
    >>> sorted(add_indices(ds, ["ndvi", "nirv"]).data_vars)
    ['ndvi', 'nir', 'nirv', 'red']
    """
    names = [names] if isinstance(names, str) else list(names)
    specs = [_index_def(n) for n in names]
    needed = list(dict.fromkeys(b for s in specs for b in s.bands))
    schema.require_variables(ds, needed, purpose=f"indices {names}")
    return ds.assign({n: compute_index(ds, n, check_units=check_units) for n in names})
