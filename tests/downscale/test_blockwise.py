"""Prediction of a box of a region from windows around it equals the whole region's prediction there.

This is what lets the cube job cut a region into work units: each unit reads its inputs plus a halo,
the tiles lie on the region's lattice, and the values do not depend on the cut.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import dask.array as dsa  # noqa: E402

from unique_xr.downscale import downscale  # noqa: E402
from unique_xr.downscale.api import DownscalerHandle  # noqa: E402
from unique_xr.downscale.blockwise import block_edges, downscale_window, halo  # noqa: E402
from unique_xr.downscale.tiling import TilePlan  # noqa: E402
from unique_xr.testing import raise_if_dask_computes  # noqa: E402


@pytest.mark.parametrize("box", [(48, 96, 64, 128), (0, 48, 0, 64), (48, 96, 0, 64)])
def test_a_box_from_its_window_equals_the_whole_region(quick_model, pairs, box):
    model, _ = quick_model
    coarse, _, lc = pairs
    k = 8
    whole = downscale(coarse[0], model, aux=[lc], members=2, steps=2)
    plan = TilePlan.make(lc.shape, tile=model.config.tile, overlap=model.config.overlap, stride=model.stride)
    h = halo(plan.tile, k)
    y0, y1, x0, x1 = box
    window = (max(y0 - h, 0), min(y1 + h, lc.shape[0]), max(x0 - h, 0), min(x1 + h, lc.shape[1]))
    c = dsa.from_array(coarse[0].values[None, window[0] // k: window[1] // k, window[2] // k: window[3] // k])
    a = dsa.from_array(lc.values[window[0]: window[1], window[2]: window[3]])
    with raise_if_dask_computes():
        out = downscale_window(c, [a], DownscalerHandle(model), plan=plan, factor=k, coarse_shape=coarse[0].shape,
                               window=window, box=box, chunk=(48, 64), n_stats=4, members=2, steps=2, sampler=None,
                               seed=0, conserve=False, device="cpu", precision="auto", batch_size=8, threads=None)
    assert out.shape == (4, 1, y1 - y0, x1 - x0)
    got = out.compute()
    for i, name in enumerate(("ndvi", "ndvi_spread", "ndvi_lower", "ndvi_upper")):
        np.testing.assert_allclose(got[i, 0], whole[name].values[y0:y1, x0:x1], atol=1e-5, rtol=0)


def test_block_edges_keep_blocks_at_least_the_halo():
    assert block_edges(0, 300, 128, 64) == [0, 128, 300]  # a 44-px last block joins its neighbour
    assert block_edges(256, 320, 128, 64) == [256, 320]
    assert all(b - a >= 64 for a, b in zip(block_edges(0, 1000, 128, 64), block_edges(0, 1000, 128, 64)[1:]))
