"""Training, checkpoint/resume and the model folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

torch = pytest.importorskip("torch")

from unique_xr.downscale import DownscaleConfig, fit, load_downscaler  # noqa: E402
from unique_xr.downscale.conditioning import DownscaleInputError  # noqa: E402
from unique_xr.downscale.model import ModelFolderError  # noqa: E402

QUICK = DownscaleConfig.preset("quick", train_steps=8, checkpoint_every=4)


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.net.state_dict().values()])


def test_folder_round_trip_and_card(quick_model):
    model, folder = quick_model
    card = json.loads((folder / "card.json").read_text())
    assert card["scheme"] == "s2" and card["factor"] == 8 and card["pairs"] == 3
    assert card["normalisation"]["aux"][0]["kind"] == "categorical"
    assert card["training"]["steps"] == 20 and np.isfinite(card["training"]["final_loss"])
    again = load_downscaler(folder)
    assert torch.equal(_weights(again), _weights(model)) and again.token == model.token


def test_damaged_or_incomplete_folder_is_refused(quick_model, tmp_path):
    _, folder = quick_model
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "card.json").write_text((folder / "card.json").read_text())
    (bad / "weights.pt").write_bytes((folder / "weights.pt").read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelFolderError, match="damaged"):
        load_downscaler(bad)
    with pytest.raises(ModelFolderError, match="needs card.json and weights.pt"):
        load_downscaler(tmp_path / "nothing")


def test_resume_gives_the_weights_of_an_uninterrupted_run(pairs, tmp_path):
    coarse, fine, lc = pairs
    straight = fit(coarse, fine, aux=[lc], scheme="s2", config=QUICK, out=tmp_path / "a")
    fit(coarse, fine, aux=[lc], scheme="s2", config=QUICK, out=tmp_path / "b", stop_after=4)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["step"] == 4
    assert not (tmp_path / "b" / "weights.pt").exists()  # an interrupted run leaves no model behind
    with pytest.raises(ModelFolderError, match="did not finish"):
        load_downscaler(tmp_path / "b")
    resumed = fit(coarse, fine, aux=[lc], scheme="s2", config=QUICK, out=tmp_path / "b", resume=True)
    assert torch.equal(_weights(resumed), _weights(straight))
    assert torch.equal(_weights(load_downscaler(tmp_path / "b")), _weights(straight))


def test_resume_refuses_other_inputs(pairs, tmp_path):
    coarse, fine, lc = pairs
    fit(coarse, fine, aux=[lc], scheme="s2", config=QUICK, out=tmp_path / "m", stop_after=4)
    with pytest.raises(DownscaleInputError, match="another configuration or other data"):
        fit(coarse[:2], fine[:2], aux=[lc], scheme="s2", config=QUICK, out=tmp_path / "m", resume=True)
    with pytest.raises(ModelFolderError, match="no checkpoint"):
        fit(coarse, fine, aux=[lc], scheme="s2", config=QUICK, out=tmp_path / "none", resume=True)


def test_fine_gaps_are_ignored_and_bad_pairs_explained(pairs):
    coarse, fine, lc = pairs
    holed = []
    for f in fine:
        v = f.values.copy()
        v[:40, :50] = np.nan
        holed.append(f.copy(data=v))
    c0 = coarse[0].values.copy()
    c0[0, 0] = np.nan
    gappy = [coarse[0].copy(data=c0), *coarse[1:]]
    model = fit(gappy, holed, scheme="s1", config=QUICK)
    assert np.isfinite(model.card["training"]["final_loss"])
    with pytest.raises(DownscaleInputError, match="coarse field only"):
        fit(coarse, fine, aux=[lc], scheme="s1", config=QUICK)
    with pytest.raises(DownscaleInputError, match="needs auxiliaries"):
        fit(coarse, fine, scheme="s2", config=QUICK)
    with pytest.raises(DownscaleInputError, match="in pairs"):
        fit(coarse[:2], fine, scheme="s1", config=QUICK)
    with pytest.raises(DownscaleInputError, match="nests in it"):
        fit([c.isel(x=slice(0, 15)) for c in coarse], fine, scheme="s1", config=QUICK)
    all_nan = [f.copy(data=np.full(f.shape, np.nan)) for f in fine]
    with pytest.raises(DownscaleInputError, match="No pixel is valid"):
        fit(coarse, all_nan, scheme="s1", config=QUICK)


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of 4"):
        DownscaleConfig(patch=66)
    with pytest.raises(ValueError, match="Unknown preset"):
        DownscaleConfig.preset("huge")
    cfg = DownscaleConfig.preset("large")
    assert DownscaleConfig.from_dict(cfg.to_dict()) == cfg


def test_cuda_request_without_cuda_is_explained(pairs):
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    coarse, fine, _ = pairs
    with pytest.raises(DownscaleInputError, match="no CUDA device"):
        fit(coarse, fine, scheme="s1", config=QUICK, device="cuda")


def test_dataarray_with_time_is_split_into_pairs(pairs):
    coarse, fine, _ = pairs
    c = xr.concat(coarse, "time")
    f = xr.concat(fine, "time")
    model = fit(c, f, scheme="s1", config=DownscaleConfig.preset("quick", train_steps=1))
    assert model.card["pairs"] == 3


def test_continuous_and_categorical_auxiliaries_together(pairs):
    """A DEM is standardised into one channel, a class map into one channel per class."""
    from unique_xr.downscale import downscale

    coarse, fine, lc = pairs
    rng = np.random.default_rng(7)
    dem = xr.DataArray(rng.normal(400.0, 80.0, lc.shape), dims=("y", "x"), name="elevation")
    model = fit(coarse, fine, aux=[dem, lc], scheme="s2", config=DownscaleConfig.preset("quick", train_steps=2))
    kinds = [(a.name, a.kind, a.channels) for a in model.norm.aux]
    assert kinds == [("elevation", "continuous", 1), ("landcover", "categorical", 3)]
    out = downscale(coarse[0], model, aux=[dem, lc], members=2)
    assert out["ndvi"].shape == lc.shape and np.isfinite(out["ndvi"].values).all()
