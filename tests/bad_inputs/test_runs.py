"""A job killed midway and rerun with other settings: its stores never mix with an earlier run's.

The tester's case: the demo, killed after its data layer and rerun with another seed, left stores of
two runs side by side, all marked complete, with nothing saying which run made which.
"""

from __future__ import annotations

import shutil

import pytest

import unique_xr.pipeline.demo as pipeline
from unique_xr.errors import CacheError
from unique_xr.load.cache import RUN_ATTR, open_zarr


def _runs(cube):
    return {path.name: open_zarr(path).attrs.get(RUN_ATTR) for path in sorted(cube.glob("*.zarr"))}


def test_a_killed_rerun_cannot_mix_its_stores_with_the_earlier_run(demo_run, tmp_path, monkeypatch):
    out = tmp_path / "demo"
    shutil.copytree(demo_run[0], out)  # a finished demo run (seed 0)
    first = _runs(out / "cube")
    assert len(set(first.values())) == 1 and None not in first.values()  # one run wrote every store

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the rerun dies after its data layer, before the GPP stage

    monkeypatch.setattr(pipeline, "run_gpp", killed)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_demo(out, seed=1, progress=False, downscale=False)
    mixed = _runs(out / "cube")
    (old,), (new,) = set(first.values()), set(mixed.values()) - set(first.values())
    assert mixed["gpp_500m.zarr"] == old and mixed["static_30m.zarr"] == new  # both runs' stores, and it shows
    # a later stage of the new run refuses the old run's GPP instead of downscaling it with new static layers
    with pytest.raises(CacheError, match="different runs") as err:
        pipeline.run_downscale_gpp(out / "cube", None, run=new, progress=False, figure=False)
    assert "gpp_500m.zarr" in str(err.value) and old in str(err.value) and new in str(err.value)
