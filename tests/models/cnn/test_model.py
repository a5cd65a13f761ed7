"""The annual GPP/NEE CNN (``unique_xr.models.cnn.model`` and ``.net``): encoding, gap-tolerant
prediction, training determinism, the model folder and the configuration.

Real data: the forest site-years of the MetaFlux monthly table (conftest.py); the models are tiny
(3 epochs, 8 channels): these tests check the machinery, not skill.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from unique_xr.errors import NotFittedError, SpecError
from unique_xr.models.cnn.featuremap import MapSpec, feature_maps_from_table
from unique_xr.models.cnn.model import (
    CARD,
    WEIGHTS,
    AnnualCNN,
    CnnConfig,
    CnnFolderError,
    fit_cnn,
    load_cnn,
)
from unique_xr.models.cnn.net import AnnualNet
from unique_xr.models.cnn.occlusion import Occlusion, hide_at_random

#: Even smaller than the tiny config, for the tests that train several models.
MICRO = CnnConfig(epochs=2, members=1, channels=4, hidden=8, batch_size=16, seed=0)


@pytest.fixture(scope="module")
def small_set(training_set):
    maps, y = training_set
    return maps.subset(np.arange(40)), y[:40]


@pytest.fixture(scope="module")
def held_out(training_set):
    """Usable site-years the tiny model was not trained on."""
    maps, _ = training_set
    return maps.subset(np.arange(120, 220))


def _states_equal(a: AnnualCNN, b: AnnualCNN) -> bool:
    return all(torch.equal(sa[k], sb[k]) for sa, sb in zip(a.states, b.states) for k in sa) and \
        len(a.states) == len(b.states)


# ----------------------------------------------------------------------------------- encoding
def test_encode_shape_channels_and_mask(tiny_model, held_out):
    x = tiny_model.encode(held_out)
    n_vars, n_types = len(held_out.spec.variables), len(held_out.spec.forest_types)
    assert x.shape == (len(held_out), 2, 12, n_vars + n_types) and x.dtype == np.float32
    observed = held_out.observed
    assert not observed.all()
    # channel 1 is the mask of observed cells
    assert np.array_equal(x[:, 1, :, :n_vars], observed.astype(np.float32))
    # missing cells are 0 in channel 0; observed ones are standardised
    assert (x[:, 0, :, :n_vars][~observed] == 0).all()
    z = (held_out.values - tiny_model.input_mean) / tiny_model.input_std
    assert np.allclose(x[:, 0, :, :n_vars][observed], z[observed])
    assert np.isfinite(x).all()
    # forest columns: the one-hot type on every row, marked known in the mask
    assert np.array_equal(x[:, 0, :, n_vars:], np.repeat(held_out.forest[:, None, :], 12, axis=1))
    assert (x[:, 1, :, n_vars:] == 1).all()


def test_encode_unknown_forest_type_is_masked(tiny_model, held_out):
    maps = held_out.subset(np.arange(3))
    maps.forest[:] = 0.0
    x = tiny_model.encode(maps)
    n_vars = len(maps.spec.variables)
    assert (x[:, :, :, n_vars:] == 0).all()


def test_encode_with_an_observed_mask_hides_more(tiny_model, held_out):
    hide = hide_at_random(held_out.observed, 0.5, np.random.default_rng(0))
    x = tiny_model.encode(held_out, hide)
    n_vars = len(held_out.spec.variables)
    assert np.array_equal(x[:, 1, :, :n_vars], hide.astype(np.float32))
    assert (x[:, 0, :, :n_vars][~hide] == 0).all()
    # a mask cannot reveal a missing cell
    x_all = tiny_model.encode(held_out, np.ones_like(hide))
    assert np.array_equal(x_all, tiny_model.encode(held_out))


def test_the_value_of_a_hidden_cell_does_not_matter(tiny_model, held_out):
    rng = np.random.default_rng(1)
    observed = hide_at_random(held_out.observed, 0.4, rng)
    garbage = held_out.values.copy()
    hidden = ~observed
    garbage[hidden] = rng.normal(1e4, 1e4, size=hidden.sum())     # wild values at hidden cells
    garbage[hidden & (rng.random(hidden.shape) < 0.3)] = np.inf
    other = held_out.with_values(garbage)
    assert np.array_equal(tiny_model.encode(other, observed), tiny_model.encode(held_out, observed))
    assert np.array_equal(tiny_model.predict(other, observed), tiny_model.predict(held_out, observed))


def test_a_nan_is_a_nan_whatever_its_payload(tiny_model, held_out):
    values = held_out.values.copy()
    missing = ~held_out.observed
    payload = np.array([0x7FC00123], dtype=np.uint32).view(np.float32)[0]  # another quiet NaN
    values[missing] = payload
    other = held_out.with_values(values)
    assert np.isnan(other.values[missing]).all()
    assert np.array_equal(tiny_model.predict(other), tiny_model.predict(held_out))


# ------------------------------------------------------------------------- gap-tolerant output
@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.9])
def test_predictions_finite_with_cells_hidden(tiny_model, held_out, fraction):
    observed = hide_at_random(held_out.observed, fraction, np.random.default_rng(2))
    pred = tiny_model.predict(held_out, observed)
    assert pred.shape == (len(held_out), 2) and pred.dtype == np.float64
    assert np.isfinite(pred).all()


def test_predictions_finite_with_every_cell_hidden(tiny_model, held_out):
    nothing = np.zeros_like(held_out.observed)
    pred = tiny_model.predict(held_out, nothing)
    assert np.isfinite(pred).all()
    # with no input left, only the forest type tells maps apart
    same_type = held_out.keys["igbp"].to_numpy() == held_out.keys["igbp"].iloc[0]
    assert np.allclose(pred[same_type], pred[same_type][0])
    all_nan = held_out.with_values(np.full_like(held_out.values, np.nan))
    assert np.array_equal(tiny_model.predict(all_nan), pred)


@pytest.mark.parametrize("drop", [[0], [2], [0, 1], [0, 1, 2, 3, 4]])
def test_predictions_finite_with_whole_variables_missing(tiny_model, held_out, drop):
    values = held_out.values.copy()
    values[:, :, drop] = np.nan
    pred = tiny_model.predict(held_out.with_values(values))
    assert np.isfinite(pred).all()
    assert not np.allclose(pred, tiny_model.predict(held_out))  # the inputs matter


def test_predictions_finite_for_a_non_forest_map(tiny_model, held_out):
    maps = held_out.subset(np.arange(5))
    maps.forest[:] = 0.0
    assert np.isfinite(tiny_model.predict(maps)).all()


def test_predict_frame(tiny_model, held_out):
    frame = tiny_model.predict_frame(held_out)
    assert list(frame.columns) == ["site", "year", "gpp", "nee"]
    assert frame["site"].tolist() == held_out.keys["site"].tolist()
    assert np.array_equal(frame[["gpp", "nee"]].to_numpy(), tiny_model.predict(held_out))


def test_predict_encoded_batches_agree(tiny_model, held_out):
    x = tiny_model.encode(held_out)
    assert np.allclose(tiny_model.predict_encoded(x, batch_size=7), tiny_model.predict_encoded(x), atol=1e-9)


def test_wrong_spec_is_refused(tiny_model, forest):
    other = feature_maps_from_table(forest.iloc[:240], MapSpec(variables=("lai", "evi")))
    with pytest.raises(SpecError, match="feature_maps_from_table"):
        tiny_model.predict(other)
    with pytest.raises(SpecError, match="the model needs"):
        tiny_model.encode(other)


def test_no_weights_is_not_fitted(tiny_model):
    empty = AnnualCNN(tiny_model.spec, tiny_model.config, tiny_model.input_mean, tiny_model.input_std,
                      tiny_model.target_mean, tiny_model.target_std)
    with pytest.raises(NotFittedError, match="fit_cnn"):
        empty.predict_encoded(np.zeros((1, 2, 12, 11), np.float32))


# ----------------------------------------------------------------------------------- training
def test_tiny_model_holds_what_it_learned(tiny_model, training_set):
    maps, y = training_set
    assert len(tiny_model.states) == tiny_model.config.members == 1
    assert tiny_model.card["n_train"] == 120
    assert np.allclose(tiny_model.target_mean, y[:120].mean(axis=0))
    assert tiny_model.target_mean[0] > 0 > tiny_model.target_mean[1]  # GPP > 0, NEE < 0 (uptake)
    sub = maps.subset(np.arange(120))
    for j in range(len(sub.spec.variables)):
        v = sub.values[..., j][sub.observed[..., j]]
        assert tiny_model.input_mean[j] == pytest.approx(v.mean(), rel=1e-4)
        assert tiny_model.input_std[j] == pytest.approx(v.std(), rel=1e-4)


def test_fit_is_deterministic_for_a_seed(small_set):
    maps, y = small_set
    a = fit_cnn(maps, y, MICRO)
    b = fit_cnn(maps, y, MICRO)
    c = fit_cnn(maps, y, replace(MICRO, seed=1))
    assert _states_equal(a, b) and a.token == b.token
    assert not _states_equal(a, c) and a.token != c.token
    assert np.array_equal(a.predict(maps), b.predict(maps))


def test_fit_leaves_torch_global_rng_alone(small_set):
    maps, y = small_set
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit_cnn(maps, y, MICRO)
    assert torch.equal(torch.rand(3), expected)


def test_fit_members_differ(small_set):
    maps, y = small_set
    model = fit_cnn(maps, y, replace(MICRO, members=2))
    assert len(model.states) == 2 and len(model.networks()) == 2
    a, b = model.states
    assert any(not torch.equal(a[k], b[k]) for k in a)
    # the ensemble predicts the mean of its members
    x = model.encode(maps)
    with torch.no_grad():
        each = [net(torch.from_numpy(x)).double().numpy() for net in model.networks()]
    assert np.allclose(model.predict_encoded(x), np.mean(each, axis=0) * model.target_std + model.target_mean)


def test_fit_without_occlusion(small_set):
    maps, y = small_set
    model = fit_cnn(maps, y, replace(MICRO, occlusion=None))
    assert np.isfinite(model.predict(maps)).all()
    assert model.config.occlusion is None


def test_fit_handles_nan_targets(small_set):
    maps, y = small_set
    y = y.copy()
    y[:5, 1] = np.nan      # NEE missing: the map still trains GPP
    y[5:8, :] = np.nan     # both missing: the map is left out
    model = fit_cnn(maps, y, MICRO)
    assert model.card["n_train"] == len(maps) - 3
    assert np.allclose(model.target_mean, np.nanmean(y[~np.isnan(y).all(axis=1)], axis=0))
    assert np.isfinite(model.target_mean).all() and np.isfinite(model.target_std).all()
    assert np.isfinite(model.predict(maps)).all()


def test_fit_refuses_a_target_with_no_value(small_set):
    # a table without NEE gives an all-NaN column: its mean is NaN and every NEE prediction would be
    # NaN (with numpy's "Mean of empty slice" warnings); the fit should say so instead
    maps, y = small_set
    y = y.copy()
    y[:, 1] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(SpecError, match="nee"):
            fit_cnn(maps, y, MICRO)


def test_fit_refuses_bad_targets(small_set):
    maps, y = small_set
    with pytest.raises(SpecError, match="shape"):
        fit_cnn(maps, y[:, 0], MICRO)
    with pytest.raises(SpecError, match="shape"):
        fit_cnn(maps, y[:-1], MICRO)
    few = np.full_like(y, np.nan)
    few[:7] = y[:7]
    with pytest.raises(SpecError, match="at least 8"):
        fit_cnn(maps, few, MICRO)


def test_fit_on_16_day_maps_of_a_daily_table():
    # the network adapts to 23 rows and to any number of columns
    rng = np.random.default_rng(0)
    times = pd.date_range("2001-01-01", "2010-12-31", freq="D")
    table = pd.DataFrame({"site": "XX-Syn", "time": times, "igbp": "ENF",
                          "a": np.sin(times.dayofyear / 58.0) + rng.normal(0, 0.1, len(times)),
                          "b": rng.normal(size=len(times))})
    maps = feature_maps_from_table(table, MapSpec(variables=("a", "b"), time_step="16-day", forest_types=("ENF",)))
    assert maps.values.shape == (10, 23, 2)
    model = fit_cnn(maps, rng.normal(size=(10, 2)), MICRO)
    assert model.encode(maps).shape == (10, 2, 23, 3)
    assert np.isfinite(model.predict(maps, np.zeros_like(maps.observed))).all()


# ----------------------------------------------------------------------------------- folder
def test_save_load_round_trip(tiny_model, held_out, tmp_path):
    folder = tiny_model.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == sorted([CARD, WEIGHTS])
    loaded = load_cnn(folder)
    assert loaded.spec == tiny_model.spec and loaded.config == tiny_model.config
    assert loaded.token == tiny_model.token
    assert _states_equal(loaded, tiny_model)
    assert np.array_equal(loaded.predict(held_out), tiny_model.predict(held_out))
    card = json.loads((folder / CARD).read_text())
    assert card["kind"] == "annual_cnn" and card["units"] == "g m-2 yr-1"
    assert "< 0 is uptake" in card["targets"]["nee"]
    assert card["n_train"] == 120 and "torch" in card["versions"]
    assert list(card["sha256"]) == [WEIGHTS] and len(card["sha256"][WEIGHTS]) == 64  # the one model-folder format
    # saving again over the same folder gives the same card and weights
    before = (folder / WEIGHTS).read_bytes()
    tiny_model.save(folder)
    assert (folder / WEIGHTS).read_bytes() == before
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_damaged_weights_are_refused(tiny_model, tmp_path):
    folder = tiny_model.save(tmp_path / "model")
    blob = bytearray((folder / WEIGHTS).read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (folder / WEIGHTS).write_bytes(bytes(blob))
    with pytest.raises(CnnFolderError, match="checksum"):
        load_cnn(folder)


def test_incomplete_or_foreign_folders_are_refused(tiny_model, tmp_path):
    with pytest.raises(CnnFolderError, match="no such folder"):
        load_cnn(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):  # CnnFolderError is one
        load_cnn(tmp_path / "nowhere")
    folder = tiny_model.save(tmp_path / "model")
    (folder / WEIGHTS).unlink()
    with pytest.raises(CnnFolderError, match=CARD):
        load_cnn(folder)
    folder = tiny_model.save(tmp_path / "other")
    card = json.loads((folder / CARD).read_text())
    (folder / CARD).write_text(json.dumps({**card, "kind": "lightgbm"}))
    with pytest.raises(CnnFolderError, match="'lightgbm'"):
        load_cnn(folder)
    (folder / CARD).write_text("{not json")
    with pytest.raises(CnnFolderError, match="JSON"):
        load_cnn(folder)


# ----------------------------------------------------------------------------------- config
def test_config_round_trip():
    for config in (CnnConfig(), CnnConfig(occlusion=None, threads=2, seed=7),
                   CnnConfig(occlusion=Occlusion(p_apply=1.0, p_run=0.0), epochs=5)):
        data = config.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert CnnConfig.from_dict(data) == config
    assert CnnConfig().to_dict()["occlusion"] == Occlusion().to_dict()


def test_config_takes_occlusion_as_a_dict():
    config = CnnConfig(occlusion={"p_apply": 0.5})
    assert config.occlusion == Occlusion(p_apply=0.5)
    with pytest.raises(SpecError, match="p_apply"):
        CnnConfig(occlusion={"p_apply": 2.0})


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"batch_size": 0}, {"channels": 0}, {"blocks": 0},
                                 {"hidden": 0}, {"seasons": 0}, {"members": 0}, {"dropout": 1.0}, {"dropout": -0.1}])
def test_config_validation(bad):
    with pytest.raises(SpecError, match=f"CnnConfig.{next(iter(bad))}"):
        CnnConfig(**bad)


@pytest.mark.parametrize("bad", [{"learning_rate": 0.0}, {"learning_rate": -1e-3},
                                 {"weight_decay": -0.1}, {"seed": -1}])
def test_config_refuses_values_that_fail_later(bad):
    # a negative seed makes numpy's default_rng raise a bare ValueError inside fit_cnn; a learning
    # rate <= 0 trains nothing (or ascends): the spec should refuse them up front
    with pytest.raises(SpecError, match=f"CnnConfig.{next(iter(bad))}"):
        CnnConfig(**bad)


def test_config_refuses_an_unknown_norm():
    # AnnualNet raises a bare ValueError only when fit_cnn builds the network
    with pytest.raises(SpecError, match="CnnConfig.norm"):
        CnnConfig(norm="layer")


def test_batch_size_one_with_batch_norm_is_refused(small_set):
    # fit_cnn skips batches of one map under batch normalisation: with batch_size=1 every batch
    # is skipped and the "trained" model is its random initial weights
    with pytest.raises(SpecError, match="CnnConfig.batch_size"):
        CnnConfig(batch_size=1, norm="batch")
    maps, y = small_set
    model = fit_cnn(maps, y, replace(MICRO, batch_size=1, norm="none"))  # without batch norm it trains
    assert np.isfinite(model.predict(maps)).all()


def test_config_is_frozen_and_keyword_only():
    with pytest.raises(TypeError):
        CnnConfig(10)
    with pytest.raises(AttributeError):
        CnnConfig().epochs = 1


# -------------------------------------------------------------------------------------- net
@pytest.mark.parametrize("norm", ["batch", "group", "none"])
@pytest.mark.parametrize("channels", [1, 2, 4, 6, 8, 10, 12])
def test_net_builds_for_any_channel_count(channels, norm):
    # CnnConfig accepts any channels >= 1; group normalisation needs a group count that divides them
    net = AnnualNet(width=11, channels=channels, hidden=8, norm=norm).eval()
    out = net(torch.zeros(3, 2, 12, 11))
    assert out.shape == (3, 2) and torch.isfinite(out).all()


@pytest.mark.parametrize(("steps", "width"), [(12, 11), (23, 7), (46, 3)])
def test_net_shapes(steps, width):
    net = AnnualNet(width=width, channels=8, hidden=8).eval()
    out = net(torch.randn(5, 2, steps, width))
    assert out.shape == (5, 2)
    # a map is predicted alone as in a batch
    with torch.no_grad():
        x = torch.randn(4, 2, steps, width)
        assert torch.allclose(net(x)[1:2], net(x[1:2]), atol=1e-5)
