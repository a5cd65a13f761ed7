"""Occlusions of feature maps (``unique_xr.models.cnn.occlusion``): training gaps and test gaps."""

from __future__ import annotations

import numpy as np
import pytest

from unique_xr.errors import SpecError
from unique_xr.models.cnn.occlusion import Occlusion, hide_at_random, occlude

ONLY_CELLS = {"p_variable": 0.0, "p_run": 0.0}
ONLY_VARIABLES = {"max_cell_rate": 0.0, "p_run": 0.0}
ONLY_RUNS = {"max_cell_rate": 0.0, "p_variable": 0.0}


def _real_mask(forest_maps) -> np.ndarray:
    return forest_maps.observed


# ------------------------------------------------------------------------------------- occlude
def test_occlude_never_reveals_a_hidden_cell(forest_maps):
    observed = _real_mask(forest_maps)
    assert not observed.all()  # the real maps have gaps
    for seed in range(3):
        out = occlude(observed, Occlusion(p_apply=1.0, max_cell_rate=0.9, p_variable=0.5, p_run=1.0),
                      np.random.default_rng(seed))
        assert out.shape == observed.shape and out.dtype == bool
        assert (out <= observed).all()
        assert out.sum() < observed.sum()
    assert observed.sum() == forest_maps.observed.sum()  # the input is not modified


def test_occlude_keeps_at_least_one_variable_per_map():
    mask = np.ones((2000, 12, 6), bool)
    out = occlude(mask, Occlusion(p_apply=1.0, p_variable=1.0, **ONLY_VARIABLES), np.random.default_rng(1))
    kept = out.all(axis=1)  # variables left whole, per map
    assert (kept.sum(axis=1) == 1).all()
    assert (out.any(axis=1) == kept).all()  # variables are dropped whole
    # the kept variable is chosen at random
    assert (kept.sum(axis=0) > 250).all()


def test_variable_drop_rate():
    mask = np.ones((5000, 12, 6), bool)
    out = occlude(mask, Occlusion(p_apply=1.0, p_variable=0.3, **ONLY_VARIABLES), np.random.default_rng(2))
    dropped = ~out.any(axis=1)
    # each variable but the kept one is dropped with p = 0.3: 0.3 * 5 / 6 of them
    assert dropped.mean() == pytest.approx(0.3 * 5 / 6, abs=0.01)
    assert (dropped.sum(axis=1) <= 5).all()


def test_runs_are_contiguous_across_all_variables_and_wrap_over_the_year():
    steps = 23
    mask = np.ones((3000, steps, 5), bool)
    spec = Occlusion(p_apply=1.0, p_run=1.0, max_run_fraction=0.34, **ONLY_RUNS)
    out = occlude(mask, spec, np.random.default_rng(3))
    hidden = ~out
    assert (hidden.all(axis=2) == hidden.any(axis=2)).all()  # a hidden row is hidden in every variable
    rows = hidden[:, :, 0]
    longest = round(0.34 * steps)
    lengths = rows.sum(axis=1)
    assert lengths.min() == 1 and lengths.max() == longest
    assert set(np.unique(lengths)) == set(range(1, longest + 1))
    wrapped = 0
    for r in rows:
        # one run, modulo the year: exactly one start (a hidden row after a shown one) on the circle
        starts = r & ~np.roll(r, 1)
        assert starts.sum() == 1
        wrapped += bool(r[0] and r[-1])
    assert wrapped > 50  # runs over the year's end happen


def test_cell_rate_over_many_maps():
    mask = np.ones((4000, 12, 6), bool)
    out = occlude(mask, Occlusion(p_apply=1.0, max_cell_rate=0.6, **ONLY_CELLS), np.random.default_rng(4))
    per_map = 1 - out.mean(axis=(1, 2))
    # the share per map is uniform on [0, 0.6]: mean 0.3, none far above 0.6
    assert per_map.mean() == pytest.approx(0.3, abs=0.01)
    assert per_map.max() < 0.8
    assert np.quantile(per_map, 0.5) == pytest.approx(0.3, abs=0.03)


def test_expected_hidden_share_with_the_defaults():
    spec = Occlusion()
    n, steps, n_vars = 6000, 12, 6
    out = occlude(np.ones((n, steps, n_vars), bool), spec, np.random.default_rng(5))
    longest = round(spec.max_run_fraction * steps)
    mean_run = (1 + longest) / 2
    shown_if_applied = ((1 - spec.max_cell_rate / 2) * (1 - spec.p_variable * (n_vars - 1) / n_vars)
                        * (1 - spec.p_run * mean_run / steps))
    expected = spec.p_apply * (1 - shown_if_applied)
    assert 1 - out.mean() == pytest.approx(expected, abs=0.01)
    # about 1 - p_apply of the maps are left as they are
    untouched = out.all(axis=(1, 2)).mean()
    assert untouched == pytest.approx(1 - spec.p_apply, abs=0.02)


def test_p_apply_zero_is_the_identity(forest_maps):
    observed = _real_mask(forest_maps)
    out = occlude(observed, Occlusion(p_apply=0.0, max_cell_rate=1.0, p_variable=1.0, p_run=1.0),
                  np.random.default_rng(6))
    assert np.array_equal(out, observed)
    assert out is not observed


def test_all_zero_rates_are_the_identity():
    mask = np.random.default_rng(7).random((50, 46, 4)) > 0.3
    out = occlude(mask, Occlusion(p_apply=1.0, max_cell_rate=0.0, p_variable=0.0, p_run=0.0),
                  np.random.default_rng(7))
    assert np.array_equal(out, mask)


def test_occlude_is_deterministic_for_a_seed():
    mask = np.ones((100, 23, 6), bool)
    a = occlude(mask, Occlusion(), np.random.default_rng(42))
    b = occlude(mask, Occlusion(), np.random.default_rng(42))
    c = occlude(mask, Occlusion(), np.random.default_rng(43))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_occlude_a_single_variable_map():
    # one variable: it is always the one kept, so only cells and runs hide anything
    mask = np.ones((500, 12, 1), bool)
    out = occlude(mask, Occlusion(p_apply=1.0, p_variable=1.0, **ONLY_VARIABLES), np.random.default_rng(8))
    assert out.all()


# -------------------------------------------------------------------------------- hide_at_random
@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.9])
def test_hide_at_random_hides_exactly_that_share_of_the_observed_cells(forest_maps, fraction):
    observed = _real_mask(forest_maps)
    out = hide_at_random(observed, fraction, np.random.default_rng(9))
    assert (out <= observed).all()
    hidden = observed & ~out
    assert hidden.sum() == round(fraction * observed.sum())
    assert out.sum() == observed.sum() - round(fraction * observed.sum())


def test_hide_at_random_is_uniform_over_variables(forest_maps):
    observed = _real_mask(forest_maps)
    out = hide_at_random(observed, 0.3, np.random.default_rng(10))
    share = (observed & ~out).sum(axis=(0, 1)) / observed.sum(axis=(0, 1))
    assert np.allclose(share, 0.3, atol=0.03)


def test_hide_at_random_zero_is_the_identity_and_seeded():
    mask = np.random.default_rng(11).random((20, 12, 6)) > 0.2
    out = hide_at_random(mask, 0.0, np.random.default_rng(0))
    assert np.array_equal(out, mask) and out is not mask
    a = hide_at_random(mask, 0.5, np.random.default_rng(1))
    assert np.array_equal(a, hide_at_random(mask, 0.5, np.random.default_rng(1)))
    assert not np.array_equal(a, hide_at_random(mask, 0.5, np.random.default_rng(2)))


def test_hide_at_random_of_an_empty_mask():
    mask = np.zeros((3, 12, 6), bool)
    assert not hide_at_random(mask, 0.5, np.random.default_rng(0)).any()


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan")])
def test_hide_at_random_refuses_bad_fractions(fraction):
    with pytest.raises(SpecError, match=r"\[0, 1\)"):
        hide_at_random(np.ones((2, 12, 6), bool), fraction, np.random.default_rng(0))


# ------------------------------------------------------------------------------------ Occlusion
@pytest.mark.parametrize("name", ["p_apply", "max_cell_rate", "p_variable", "p_run", "max_run_fraction"])
@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan")])
def test_occlusion_validation(name, value):
    with pytest.raises(SpecError, match=f"Occlusion.{name}"):
        Occlusion(**{name: value})


def test_occlusion_is_a_frozen_keyword_only_spec():
    spec = Occlusion(p_run=0.5)
    assert spec.to_dict() == {"p_apply": 0.5, "max_cell_rate": 0.6, "p_variable": 0.15, "p_run": 0.5,
                              "max_run_fraction": 0.34}
    assert Occlusion(**spec.to_dict()) == spec
    with pytest.raises(TypeError):
        Occlusion(0.5)
    with pytest.raises(AttributeError):
        spec.p_run = 0.1
