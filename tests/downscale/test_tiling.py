"""The global tile lattice, blending windows and position-keyed noise (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from unique_xr.downscale.tiling import TilePlan, position_noise, predict_region, reflect_index


@pytest.mark.parametrize("shape", [(100, 90), (128, 128), (20, 300), (33, 65)])
@pytest.mark.parametrize("tile,overlap", [(32, 8), (64, 16), (32, 0)])
def test_plan_covers_every_pixel_with_positive_weight(shape, tile, overlap):
    plan = TilePlan.make(shape, tile=tile, overlap=overlap, stride=4)
    assert all(p % 4 == 0 and p >= tile for p in plan.padded)
    wsum = np.zeros(plan.padded)
    for sy in plan.starts_y:
        for sx in plan.starts_x:
            assert sy % 4 == 0 and sx % 4 == 0
            wsum[sy: sy + tile, sx: sx + tile] += np.outer(plan.weight(sy, 0), plan.weight(sx, 1))
    assert wsum[: shape[0], : shape[1]].min() > 0.5


def test_weights_sum_to_one_where_two_tiles_overlap_by_overlap():
    plan = TilePlan.make((224, 224), tile=64, overlap=16, stride=1)  # starts 0, 48, 96, 144, 160
    a, b = plan.weight(0, 0), plan.weight(48, 0)
    np.testing.assert_allclose(a[48:64] + b[:16], 1.0)
    assert plan.weight(0, 0)[0] == 1.0 and plan.weight(plan.starts_y[-1], 0)[-1] == 1.0  # flat at field edges


def test_plan_rejects_off_lattice_tiles():
    with pytest.raises(ValueError, match="multiples of the network stride"):
        TilePlan.make((64, 64), tile=30, overlap=8, stride=4)
    with pytest.raises(ValueError, match="smaller than tile"):
        TilePlan.make((64, 64), tile=32, overlap=32, stride=4)


def test_position_noise_is_standard_normal_and_keyed():
    z = position_noise(3, 1, 0, np.arange(256), np.arange(256))
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
    assert abs(np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1]) < 0.02
    other = [position_noise(4, 1, 0, np.arange(8), np.arange(8)), position_noise(3, 2, 0, np.arange(8), np.arange(8)),
             position_noise(3, 1, 1, np.arange(8), np.arange(8))]
    for o in other:
        assert not np.allclose(o, z[:8, :8])
    np.testing.assert_array_equal(position_noise(3, 1, 0, np.arange(100, 108), np.arange(5)), z[100:108, :5])


def test_reflect_index():
    np.testing.assert_array_equal(reflect_index(np.arange(8), 5), [0, 1, 2, 3, 4, 3, 2, 1])
    np.testing.assert_array_equal(reflect_index(np.arange(3), 1), [0, 0, 0])


def test_predict_region_blends_a_translation_invariant_rule_exactly():
    """A 'model' whose output depends only on each pixel's input is reproduced exactly by the blend."""
    rng = np.random.default_rng(0)
    cond = rng.random((2, 96, 96)).astype(np.float32)

    def sample(batch, noise):
        return batch[:, 0] * 2 + batch[:, 1] + 0 * noise(0)[:, 0]

    plan = TilePlan.make((96, 96), tile=32, overlap=8, stride=4)
    whole = predict_region(sample, cond, (0, 0), (0, 96, 0, 96), plan, members=2)
    np.testing.assert_allclose(whole[0], cond[0] * 2 + cond[1], rtol=1e-6)
    part = predict_region(sample, cond[:, 16:, 16:], (16, 16), (40, 70, 52, 96), plan, members=2)
    np.testing.assert_allclose(part, whole[:, 40:70, 52:96], rtol=1e-6)
