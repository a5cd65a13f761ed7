"""Coarse-to-fine interpolation, mass conservation and the stored normalisation (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from unique_xr.downscale.conditioning import (
    AuxSpec,
    DownscaleInputError,
    Normalisation,
    block_replicate,
    conserve_mass,
    upsample_bilinear,
)


def test_bilinear_reproduces_a_plane_between_centres():
    k = 4
    yy, xx = np.mgrid[0:6, 0:5]
    plane = 2.0 * yy - 0.5 * xx + 1.0
    fine = upsample_bilinear(plane, k)
    fy = (np.arange(6 * k) + 0.5) / k - 0.5
    fx = (np.arange(5 * k) + 0.5) / k - 0.5
    expect = 2.0 * np.clip(fy, 0, 5)[:, None] - 0.5 * np.clip(fx, 0, 4)[None, :] + 1.0
    np.testing.assert_allclose(fine, expect, rtol=1e-6)


def test_bilinear_of_a_window_equals_the_whole():
    rng = np.random.default_rng(1)
    coarse = rng.random((10, 12))
    whole = upsample_bilinear(coarse, 8)
    rows, cols = np.arange(17, 50), np.arange(30, 71)
    win = coarse[1:8, 3:10]
    part = upsample_bilinear(win, 8, rows=rows, cols=cols, origin=(1, 3), coarse_shape=coarse.shape)
    np.testing.assert_array_equal(part, whole[np.ix_(rows, cols)])


def test_bilinear_masks_the_footprint_of_missing_coarse_pixels():
    coarse = np.arange(16.0).reshape(4, 4)
    coarse[1, 2] = np.nan
    fine = upsample_bilinear(coarse, 3)
    assert np.isnan(fine[3:6, 6:9]).all()
    assert np.isfinite(np.delete(np.delete(fine, range(3, 6), 0), range(6, 9), 1)).all()


def test_conserve_mass_matches_cell_means_and_keeps_gaps():
    rng = np.random.default_rng(2)
    coarse = rng.random((3, 4))
    field = rng.random((2, 12, 16))
    field[0, :3, :3] = np.nan
    out = conserve_mass(field, block_replicate(coarse, 4), 4)
    with np.errstate(invalid="ignore"):
        means = np.nanmean(out.reshape(2, 3, 4, 4, 4), axis=(2, 4))
    np.testing.assert_allclose(means, np.broadcast_to(coarse, means.shape), rtol=1e-12)
    assert np.isnan(out[0, :3, :3]).all()
    with pytest.raises(DownscaleInputError, match="multiples of 4"):
        conserve_mass(field[:, :10], block_replicate(coarse, 4)[:10], 4)


def test_aux_kinds_and_encoding():
    lc = np.array([[1, 2], [4, 2]], dtype=np.uint8)
    spec = AuxSpec.fit("lc", lc)
    assert spec.kind == "categorical" and spec.classes == (1, 2, 4)
    enc = spec.encode(lc)
    assert enc.shape == (3, 2, 2) and (enc.sum(0) == 1).all()
    dem = np.array([[100.5, 200.0], [np.nan, 300.0]])
    dspec = AuxSpec.fit("dem", dem)
    assert dspec.kind == "continuous"
    z = dspec.encode(dem)
    assert z.shape == (1, 2, 2)
    z = z[0]
    assert z[1, 0] == 0 and abs(np.nanmean(np.where(np.isfinite(dem), z, np.nan))) < 1e-6
    assert AuxSpec.from_dict(dspec.to_dict()) == dspec


def test_normalisation_round_trip_and_channels():
    rng = np.random.default_rng(3)
    coarse_up = [rng.random((8, 8)) for _ in range(2)]
    fine = [c + 0.1 * rng.standard_normal((8, 8)) for c in coarse_up]
    lc = rng.integers(1, 3, (8, 8))
    dem = rng.normal(300, 50, (8, 8))
    norm = Normalisation.fit(coarse_up, fine, [lc, dem], aux_names=["lc", "dem"])
    assert norm.cond_channels == 2 + 2 + 1
    r = norm.residual(fine[0], coarse_up[0])
    np.testing.assert_allclose(norm.to_field(r, coarse_up[0]), fine[0], rtol=1e-5)
    assert Normalisation.from_dict(norm.to_dict()) == norm
    gap = coarse_up[0].copy()
    gap[0, 0] = np.nan
    cond = norm.conditioning(gap, [lc, dem])
    assert cond.shape == (5, 8, 8) and cond[0, 0, 0] == 0 and cond[1, 0, 0] == 0 and cond[1, 1, 1] == 1
    with pytest.raises(DownscaleInputError, match="trained with 2 auxiliary"):
        norm.conditioning(gap, [])
