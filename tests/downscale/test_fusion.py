"""Spatiotemporal-fusion baselines: naive fusion and STARFM (Gao et al., 2006), checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unique_xr.downscale.fusion import naive_fusion, starfm
from unique_xr.errors import SpecError

nan = np.nan


# --------------------------------------------------------------------------- naive fusion

def test_naive_fusion_by_hand_with_a_missing_prior_pixel():
    coarse_today = np.array([[0.50, 0.60, 0.70],
                             [0.20, nan, 0.40]])
    prior_fine = np.array([[0.30, nan, 0.65],
                           [0.10, 0.20, 0.90]])
    prior_coarse = np.array([[0.40, 0.55, 0.60],
                             [0.25, 0.30, nan]])
    expected = np.array([[0.30 + (0.50 - 0.40), 0.60, 0.65 + (0.70 - 0.60)],   # (0, 1): no prior fine
                         [0.10 + (0.20 - 0.25), nan, 0.40]])                    # (1, 1): no coarse today,
    out = naive_fusion(coarse_today, prior_fine, prior_coarse)                 # (1, 2): no prior coarse
    assert out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_allclose(out, expected, atol=1e-7)
    assert np.array_equal(np.isnan(out), np.isnan(coarse_today))


def test_naive_fusion_refuses_mismatched_shapes():
    with pytest.raises(SpecError, match="share one fine grid"):
        naive_fusion(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((3, 2)))


# --------------------------------------------------------------------------- STARFM by hand

def _hand_case():
    """5 x 5 images: background 0.9 and a few pixels near 0.5 around the centre (2, 2).

    ``fine`` is F_k (prior fine), ``cp`` C_k (prior coarse), ``ct`` C_0 (coarse today).
    """
    fine = np.full((5, 5), 0.90)
    cp = np.full((5, 5), 0.85)
    ct = np.full((5, 5), 0.90)
    for (y, x), (f, c_prior, c_today) in {
        (2, 2): (0.50, 0.40, 0.60),  # centre
        (2, 3): (0.52, 0.45, 0.60),  # P1
        (1, 1): (0.48, 0.40, 0.65),  # P2
        (0, 4): (0.55, 0.30, 0.40),  # P3: spectral difference too large for the centre
        (4, 2): (0.47, 0.45, 0.80),  # P4: temporal difference too large for the centre
    }.items():
        fine[y, x], cp[y, x], ct[y, x] = f, c_prior, c_today
    fine[3, 3] = nan                 # no prior -> coarse today
    cp[4, 0] = ct[4, 0] = 0.85       # no coarse change (T = 0) -> prior fine 0.9
    cp[4, 4], ct[4, 4] = 0.90, 0.95  # fine equals coarse (S = 0) -> coarse today 0.95
    ct[0, 0] = nan                   # no coarse today -> NaN
    return fine, cp, ct


HAND = {"window": 5, "n_classes": 4, "fine_uncertainty": 0.03, "coarse_uncertainty": 0.04}


def test_starfm_hand_case_threshold_is_what_the_candidates_below_assume():
    fine, _, _ = _hand_case()
    threshold = 2 * np.nanstd(fine) / 4          # about 0.081
    # P1..P4 are within 0.05 of the centre and of P1, the 0.9 background is 0.38 or more away
    assert 0.05 < threshold < 0.38


def test_starfm_centre_pixel_by_hand():
    fine, cp, ct = _hand_case()
    out = starfm(ct, fine, cp, **HAND)
    # centre: S = |0.50 - 0.40| = 0.10, T = |0.40 - 0.60| = 0.20
    # filters: S <= 0.10 + hypot(0.03, 0.04) = 0.15 and T <= 0.20 + 0.04 * sqrt(2) = 0.2566
    # A = (5 - 1) / 2 = 2, D = 1 + d / 2
    #   centre  S 0.10  T 0.20  d 0        D 1.0         C = 0.020            local 0.50 + 0.20 = 0.70
    #   P1      S 0.07  T 0.15  d 1        D 1.5         C = 0.01575          local 0.52 + 0.15 = 0.67
    #   P2      S 0.08  T 0.25  d sqrt(2)  D 1.70711     C = 0.0341421        local 0.48 + 0.25 = 0.73
    #   P3      S 0.25 > 0.15: out;  P4  T 0.35 > 0.2566: out;  background: not similar;  (3, 3): no prior
    c = np.array([0.10 * 0.20 * 1.0, 0.07 * 0.15 * 1.5, 0.08 * 0.25 * (1 + math.sqrt(2) / 2)])
    local = np.array([0.70, 0.67, 0.73])
    weights = (1 / c) / np.sum(1 / c)            # 1/C = 50, 63.492, 29.289 -> W = 0.35019, 0.44468, 0.20513
    expected = float(np.sum(weights * local))    # 0.24513 + 0.29794 + 0.14975 = 0.69281
    assert out[2, 2] == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.6928136, abs=1e-6)


def test_starfm_candidates_depend_on_the_central_pixel():
    fine, cp, ct = _hand_case()
    out = starfm(ct, fine, cp, **HAND)
    # P1 at (2, 3): S = 0.07, T = 0.15 -> filters S <= 0.12, T <= 0.2066; window rows 0-4, columns 1-4
    #   P1      S 0.07  T 0.15  d 0  D 1.0  C = 0.0105   local 0.67
    #   centre  S 0.10  T 0.20  d 1  D 1.5  C = 0.030    local 0.70
    #   P2 (T 0.25), P4 (T 0.35) and P3 (S 0.25) fail here although P2 passed for the centre
    c = np.array([0.07 * 0.15 * 1.0, 0.10 * 0.20 * 1.5])
    local = np.array([0.67, 0.70])
    expected = float(np.sum(local / c) / np.sum(1 / c))   # 0.677778
    assert out[2, 3] == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.6777778, abs=1e-6)


def test_starfm_special_cases_and_fallbacks_by_hand():
    fine, cp, ct = _hand_case()
    out = starfm(ct, fine, cp, **HAND)
    assert out[4, 0] == np.float32(0.90)   # T = 0: the prior fine value
    assert out[4, 4] == np.float32(0.95)   # S = 0: today's coarse value
    assert out[3, 3] == np.float32(0.90)   # no prior: today's coarse value
    assert np.isnan(out[0, 0])             # no coarse today
    assert np.isnan(out).sum() == 1


def test_starfm_zero_distance_candidate_takes_over():
    # pixel 0: S = 0.1, T = 0.2; pixel 1 is similar (|0.52 - 0.50| <= 2 * 0.184 / 4) with S = 0,
    # so C = 0 and its local value 0.52 + (0.62 - 0.52) = 0.62 wins outright.
    fine = np.array([[0.50, 0.52, 0.90]])
    cp = np.array([[0.40, 0.52, 0.90]])
    ct = np.array([[0.60, 0.62, 1.00]])
    out = starfm(ct, fine, cp, window=3, fine_uncertainty=0, coarse_uncertainty=0)
    np.testing.assert_allclose(out, [[0.62, 0.62, 1.00]], atol=1e-7)


# --------------------------------------------------------------------------- STARFM properties

def _random_case(seed=0, shape=(20, 18), missing=0.1):
    rng = np.random.default_rng(seed)
    fine = rng.uniform(0.1, 0.9, shape)
    cp = fine + rng.normal(0, 0.05, shape)
    ct = cp + rng.normal(0.03, 0.05, shape)
    fine[rng.random(shape) < missing] = nan
    cp[rng.random(shape) < missing] = nan
    ct[rng.random(shape) < missing] = nan
    return fine, cp, ct


def test_starfm_without_coarse_change_returns_the_prior():
    fine, cp, ct = _random_case()
    ct = cp.copy()
    ct[0, :3] = 0.4                                  # coarse today where the prior coarse is missing
    cp[0, :3] = nan
    out = starfm(ct, fine, cp, window=5)
    has_prior = np.isfinite(fine) & np.isfinite(cp)
    assert np.array_equal(out[has_prior], fine[has_prior].astype(np.float32))
    assert np.array_equal(out[~has_prior], ct[~has_prior].astype(np.float32), equal_nan=True)


def test_starfm_uniform_change_moves_a_piecewise_constant_prior_by_the_change():
    rng = np.random.default_rng(1)
    levels = np.array([0.2, 0.5, 0.8])            # threshold 2 * std / 4 ~ 0.12 < 0.3 between classes
    fine = levels[np.repeat(np.repeat(rng.integers(0, 3, (6, 5)), 4, 0), 4, 1)]
    cp = fine + rng.normal(0, 0.05, fine.shape)
    out = starfm(cp + 0.07, fine, cp, window=7)
    np.testing.assert_allclose(out, fine + 0.07, atol=1e-6)


def test_starfm_stays_within_the_similarity_threshold_of_naive_under_uniform_change():
    fine, cp, _ = _random_case(seed=2, missing=0.0)
    out = starfm(cp + 0.1, fine, cp, window=7)
    threshold = 2 * np.std(fine) / 4
    # every candidate's local value is F_p + 0.1 with |F_p - F_c| <= threshold
    assert np.all(np.abs(out - (fine + 0.1)) <= threshold + 1e-6)
    assert np.abs(out - (fine + 0.1)).max() > 1e-3   # and it does smooth: not the naive answer


def test_starfm_missing_inputs_fall_back_and_keep_shape_and_dtype():
    fine, cp, ct = _random_case(seed=3)
    out = starfm(ct, fine, cp, window=5)
    assert out.shape == fine.shape and out.dtype == np.float32
    assert np.array_equal(np.isnan(out), np.isnan(ct))
    no_prior = ~(np.isfinite(fine) & np.isfinite(cp)) & np.isfinite(ct)
    assert no_prior.any()
    assert np.array_equal(out[no_prior], ct[no_prior].astype(np.float32))


def _starfm_reference(ct, fine, cp, *, window, n_classes, sigma_f, sigma_c):
    """Pixel-by-pixel STARFM as the paper describes it (slow, for comparison)."""
    half = window // 2
    threshold = 2 * np.nanstd(fine) / n_classes
    ny, nx = fine.shape
    out = np.where(np.isfinite(fine) & np.isfinite(cp), fine + ct - cp, ct)
    for y in range(ny):
        for x in range(nx):
            if not (np.isfinite(fine[y, x]) and np.isfinite(cp[y, x]) and np.isfinite(ct[y, x])):
                continue
            s_c, t_c = abs(fine[y, x] - cp[y, x]), abs(cp[y, x] - ct[y, x])
            if s_c == 0 or t_c == 0:
                continue
            weights, values, zero_values = [], [], []
            for yy in range(max(0, y - half), min(ny, y + half + 1)):
                for xx in range(max(0, x - half), min(nx, x + half + 1)):
                    f, c_prior, c_today = fine[yy, xx], cp[yy, xx], ct[yy, xx]
                    if not (np.isfinite(f) and np.isfinite(c_prior) and np.isfinite(c_today)):
                        continue
                    s, t = abs(f - c_prior), abs(c_prior - c_today)
                    if (abs(f - fine[y, x]) <= threshold and s <= s_c + math.hypot(sigma_f, sigma_c)
                            and t <= t_c + math.sqrt(2) * sigma_c):
                        local = f + c_today - c_prior
                        c = s * t * (1 + math.hypot(yy - y, xx - x) / half)
                        if c == 0:
                            zero_values.append(local)
                        else:
                            weights.append(1 / c)
                            values.append(local)
            if zero_values:
                out[y, x] = np.mean(zero_values)
            elif weights:
                out[y, x] = np.dot(weights, values) / np.sum(weights)
    return out


def test_starfm_matches_a_pixel_by_pixel_reference():
    fine, cp, ct = _random_case(seed=4, shape=(11, 9))
    cp[5, 4] = fine[5, 4]          # S = 0 at one pixel: taken over by neighbours that see it
    ct[2, 6] = cp[2, 6]            # T = 0 at another
    kwargs = {"window": 5, "n_classes": 3}
    out = starfm(ct, fine, cp, fine_uncertainty=0.01, coarse_uncertainty=0.02, **kwargs)
    expected = _starfm_reference(ct, fine, cp, sigma_f=0.01, sigma_c=0.02, **kwargs)
    np.testing.assert_allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"window": 4}, "odd integer"),
    ({"window": 1}, "odd integer"),
    ({"n_classes": 0}, "n_classes"),
    ({"fine_uncertainty": -0.1}, "fine_uncertainty"),
    ({"coarse_uncertainty": float("nan")}, "coarse_uncertainty"),
    ({"distance_scale": 0}, "distance_scale"),
])
def test_starfm_refuses_bad_parameters(kwargs, match):
    with pytest.raises(SpecError, match=match):
        starfm(np.ones((4, 4)), np.ones((4, 4)), np.ones((4, 4)), **kwargs)


def test_starfm_refuses_non_2d_input():
    with pytest.raises(SpecError, match="2-D"):
        starfm(np.ones(4), np.ones(4), np.ones(4))
