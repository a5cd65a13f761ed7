"""Scheme S3 (fusion): the prior, fitting and predicting with and without it, tiling, distillation, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from unique_xr.downscale import DownscaleConfig, distill, downscale, fit, load_downscaler, prior_from_history
from unique_xr.downscale.conditioning import PRIOR_CHANNELS, DownscaleInputError, PriorFields
from unique_xr.downscale.prior import cell_mean_on_fine, composite, prior_fields

K = 8
DATES = ["2020-03-01", "2020-04-10", "2020-05-20", "2020-07-01"]


def _series(n=4, shape=(64, 96), seed=0):
    """Fine images with a persistent field pattern (what a prior carries) and a seasonal level, and block means."""
    rng = np.random.default_rng(seed)
    h, w = shape
    pattern = np.repeat(np.repeat(rng.normal(size=(h // 4, w // 4)), 4, 0), 4, 1) * 0.1
    fine, coarse = [], []
    for i in range(n):
        f = 0.3 + 0.1 * i + pattern * (1 + 0.1 * i) + 0.01 * rng.standard_normal(shape)
        fine.append(xr.DataArray(f, dims=("y", "x"), name="gpp", attrs={"units": "g m-2 d-1"}))
        coarse.append(xr.DataArray(f.reshape(h // K, K, w // K, K).mean((1, 3)), dims=("y", "x"), name="gpp",
                                   attrs={"units": "g m-2 d-1"}))
    return coarse, fine


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    coarse, fine = _series()
    out = tmp_path_factory.mktemp("s3") / "model"
    model = fit(coarse[:3], fine[:3], scheme="s3", dates=DATES[:3], factor=K,
                config=DownscaleConfig.preset("quick", train_steps=60), out=out)
    return model, out, coarse, fine


def _prior_for(fine, target=3):
    days = [np.datetime64(d, "D").astype(int) for d in DATES]
    pf = prior_fields([f.values for f in fine[:target]], days[:target], days[target], doy=0.0, factor=K)
    return xr.Dataset({"fine": (("y", "x"), pf.fine), "age": (("y", "x"), pf.age)})


def test_composite_takes_the_latest_clear_value_before_the_day():
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[np.nan, 5.0, 6.0]])
    c = np.array([[7.0, 8.0, 9.0]])  # on the target day: never its own prior
    fine, index = composite([b, a, c], [20, 10, 30], 30)
    np.testing.assert_array_equal(fine, [[1.0, 5.0, 6.0]])
    np.testing.assert_array_equal(index, [[1, 0, 0]])
    pf = prior_fields([a, b], [10, 20], 25, doy=100.0, coarse_up=[a * 0 + 1.0, b * 0 + 2.0])
    np.testing.assert_array_equal(pf.age, [[15.0, 5.0, 5.0]])
    np.testing.assert_array_equal(pf.coarse, [[1.0, 2.0, 2.0]])


def test_cell_mean_needs_clear_cells_and_whole_cell_windows():
    f = np.arange(16, dtype=float).reshape(4, 4)
    f[:2, 2:] = np.nan  # one cell entirely cloudy
    out = cell_mean_on_fine(f, 2)
    assert np.isnan(out[:2, 2:]).all() and np.isfinite(out[2:]).all()
    with pytest.raises(DownscaleInputError, match="coarse cell edge"):
        cell_mean_on_fine(f, 2, origin=(1, 0))
    with pytest.raises(DownscaleInputError, match="prior-coarse"):
        cell_mean_on_fine(f, 1)


def test_prior_channels_are_zero_without_a_prior():
    from unique_xr.downscale.conditioning import Normalisation

    norm = Normalisation(field_mean=0.5, field_std=0.2, residual_std=0.1, prior=True)
    up = np.full((2, 2), 0.6)
    nan = np.full((2, 2), np.nan)
    fine = np.array([[0.7, np.nan], [0.5, 0.5]])
    pf = PriorFields(fine=fine, coarse=np.full((2, 2), 0.55), age=np.full((2, 2), 32.0), observed=1.0, doy=91.3125)
    ch = pf.channels(norm, up)
    assert ch.shape == (len(PRIOR_CHANNELS), 2, 2)
    np.testing.assert_allclose(ch[0], [[1.5, 0.0], [-0.5, -0.5]])  # (fine - coarse) / residual_std
    np.testing.assert_allclose(ch[1], [[0.25, 0.0], [0.25, 0.25]])  # (today - prior coarse) / field_std
    np.testing.assert_array_equal(ch[2], [[1, 0], [1, 1]])
    np.testing.assert_allclose(ch[3][0, 0], np.exp(-1.0))
    np.testing.assert_allclose(ch[5:, 0, 0], [1.0, 0.0], atol=1e-6)  # a quarter year: sin 1, cos 0
    empty = PriorFields(fine=nan, coarse=nan, age=nan, observed=1.0, doy=91.3125).channels(norm, up)
    assert not empty[:5].any() and np.allclose(empty[5], 1.0)
    with pytest.raises(DownscaleInputError, match="prior"):
        norm.conditioning(up, [], None)


def test_s3_fit_records_dates_and_refuses_missing_ones():
    coarse, fine = _series(n=2, shape=(32, 32))
    cfg = DownscaleConfig.preset("quick", train_steps=2)
    with pytest.raises(DownscaleInputError, match="day of every pair"):
        fit(coarse, fine, scheme="s3", factor=K, config=cfg)
    with pytest.raises(DownscaleInputError, match="scheme s3 only"):
        fit(coarse, fine, scheme="s1", factor=K, config=cfg, dates=DATES[:2])
    model = fit(coarse, fine, scheme="s3", factor=K, config=cfg, dates=DATES[:2])
    assert model.card["dates"] == DATES[:2] and model.norm.prior
    with pytest.warns(UserWarning, match="No training pair .* has a prior"):  # one date: nothing to learn a prior from
        fit(coarse[:1], fine[:1], scheme="s3", factor=K, config=cfg, dates=DATES[:1])
    assert model.norm.cond_channels == 2 + len(PRIOR_CHANNELS)


def test_s3_without_a_prior_is_well_defined_and_follows_the_coarse_field(s3):
    model, _, coarse, fine = s3
    none = downscale(coarse[3], model, factor=K, date=DATES[3], members=2, seed=1)
    empty = _prior_for(fine) * np.nan
    also_none = downscale(coarse[3], model, factor=K, date=DATES[3], members=2, seed=1, prior=empty)
    assert none.attrs["downscaling_prior"].startswith("none")
    field = none["gpp"].values
    assert np.isfinite(field).all()
    # an all-missing prior is no prior
    np.testing.assert_allclose(also_none["gpp"].values, field, atol=1e-6)
    # S2-like: centred on the coarse field (cell means track it)
    cells = field.reshape(8, K, 12, K).mean((1, 3))
    assert np.corrcoef(cells.ravel(), coarse[3].values.ravel())[0, 1] > 0.9
    with pytest.raises(DownscaleInputError, match="date="):
        downscale(coarse[3], model, factor=K)


def test_s3_prior_changes_the_prediction_where_there_is_one(s3):
    model, _, coarse, fine = s3
    prior = _prior_for(fine)
    half = prior.copy(deep=True)
    half["fine"][:, 48:] = np.nan
    with_prior = downscale(coarse[3], model, factor=K, date=DATES[3], prior=half, members=2, seed=1)["gpp"].values
    without = downscale(coarse[3], model, factor=K, date=DATES[3], members=2, seed=1)["gpp"].values
    assert np.isfinite(with_prior).all()
    # far (beyond the receptive field) from the prior's edge the no-prior half is the no-prior prediction
    reach = model.net.receptive_radius + 1
    np.testing.assert_allclose(with_prior[:, 48 + reach:], without[:, 48 + reach:], atol=1e-5)
    assert np.abs(with_prior[:, : 48 - reach] - without[:, : 48 - reach]).max() > 1e-3


def _detail(a):
    """Sub-coarse detail: each pixel minus its coarse cell's mean."""
    h, w = a.shape
    return a - np.repeat(np.repeat(a.reshape(h // K, K, w // K, K).mean((1, 3)), K, 0), K, 1)


def test_fit_prior_gain_recovers_weight_and_decay():
    from unique_xr.downscale.prior import fit_prior_gain

    rng = np.random.default_rng(0)
    detail, age = rng.normal(size=5000), rng.uniform(1, 100, 5000)
    change = 0.8 * np.exp(-age / 32.0) * detail + 0.01 * rng.normal(size=5000)
    detail[:10] = np.nan  # no prior there
    assert fit_prior_gain(change, detail, age) == pytest.approx((0.8, 32.0), abs=0.01)
    assert fit_prior_gain(-detail, detail, age)[0] == 0.0  # never a negative weight
    assert fit_prior_gain(change, np.full(5000, np.nan), age) == (0.0, float("inf"))


def test_fusion_base_carries_the_priors_field_scale_detail(s3):
    """With a persistent field pattern, S3's 30 m detail follows the prior's; without the base a short fit misses it."""
    model, _, coarse, fine = s3
    assert model.norm.prior_weight > 0.5 and model.card["normalisation"]["prior_weight"] == model.norm.prior_weight
    truth = _detail(fine[3].values)
    cfg = DownscaleConfig.preset("quick", train_steps=60)
    plain = fit(coarse[:3], fine[:3], scheme="s3", dates=DATES[:3], factor=K, config=cfg, fusion_base=False)
    assert plain.norm.prior_weight == 0.0 and "prior_weight" not in plain.describe()["normalisation"]
    r = {}
    for name, m in (("base", model), ("plain", plain)):
        out = downscale(coarse[3], m, factor=K, date=DATES[3], prior=_prior_for(fine), members=2, seed=1)
        r[name] = np.corrcoef(_detail(out["gpp"].values).ravel(), truth.ravel())[0, 1]
    assert r["base"] > 0.8 and r["plain"] < 0.5, r


@pytest.mark.parametrize("observed", [False, True])
def test_s3_chunked_equals_unchunked(s3, observed):
    model, _, coarse, fine = s3
    prior = _prior_for(fine)
    if observed:
        from unique_xr.downscale.api import coarse_on_fine

        prior["coarse"] = (("y", "x"), coarse_on_fine(coarse[2].values, K))
    eager = downscale(coarse[3], model, factor=K, date=DATES[3], prior=prior, members=2, seed=3)
    lazy = downscale(coarse[3], model, factor=K, date=DATES[3], prior=prior.chunk(), members=2, seed=3, chunks=32)
    assert lazy["gpp"].chunks is not None
    np.testing.assert_allclose(lazy["gpp"].values, eager["gpp"].values, atol=1e-5)
    np.testing.assert_allclose(lazy["gpp_spread"].values, eager["gpp_spread"].values, atol=1e-5)


def test_prior_from_history_on_a_cube_is_lazy_and_matches_one_day(s3):
    model, _, coarse, fine = s3
    times = np.array(DATES, dtype="datetime64[ns]")
    history = xr.concat(fine[:3], "time").assign_coords(time=times[:3]).chunk({"y": 32, "x": 32})
    prior = prior_from_history(history, times[2:])
    assert prior["fine"].chunks is not None  # nothing computed
    np.testing.assert_array_equal(prior["age"].isel(time=1).values, 42.0)  # 2020-05-20 -> 2020-07-01
    np.testing.assert_array_equal(prior["age"].isel(time=0).values, 40.0)  # its own day is not a prior
    cube = xr.concat(coarse[2:], "time").assign_coords(time=times[2:])
    out = downscale(cube, model, factor=K, prior=prior, members=2, seed=3, chunks=32)
    one = downscale(coarse[3], model, factor=K, date=DATES[3], prior=_prior_for(fine), members=2, seed=3)
    np.testing.assert_allclose(out["gpp"].isel(time=1).values, one["gpp"].values, atol=1e-5)


def test_default_output_is_the_mean_of_the_default_members(s3):
    from unique_xr.downscale.config import DEFAULT_MEMBERS

    model, _, coarse, fine = s3
    out = downscale(coarse[3], model, factor=K, date=DATES[3], prior=_prior_for(fine))
    assert out.attrs["downscaling_members"] == DEFAULT_MEMBERS and "gpp_spread" in out
    assert out["gpp"].attrs["estimate"].startswith(f"mean of {DEFAULT_MEMBERS}")
    one = downscale(coarse[3], model, factor=K, date=DATES[3], prior=_prior_for(fine), members=1)
    assert "sample, not the best estimate" in one["gpp"].attrs["estimate"]


def test_distilled_sampler_is_stored_reproducible_and_chosen_by_steps(s3, tmp_path):
    model, folder, coarse, fine = s3
    a = distill(load_downscaler(folder), coarse[:3], fine[:3], dates=DATES[:3], factor=K, steps=1, start=8,
                round_steps=6, out=tmp_path / "a")
    b = distill(load_downscaler(folder), coarse[:3], fine[:3], dates=DATES[:3], factor=K, steps=1, start=8,
                round_steps=6, out=tmp_path / "b")
    assert sorted(a.students) == [1, 2, 4] and a.token == b.token  # same seed, same students
    assert a.token != model.token  # the students are part of the model
    loaded = load_downscaler(tmp_path / "a")
    assert loaded.token == a.token and loaded.distilled["from_steps"] == 8
    prior = _prior_for(fine)
    x = downscale(coarse[3], loaded, factor=K, date=DATES[3], prior=prior, steps=4, members=2, seed=5)
    y = downscale(coarse[3], loaded, factor=K, date=DATES[3], prior=prior, steps=4, members=2, seed=5)
    assert x.attrs["downscaling_sampler"] == "distilled"
    np.testing.assert_array_equal(x["gpp"].values, y["gpp"].values)
    full = downscale(coarse[3], loaded, factor=K, date=DATES[3], prior=prior, steps=4, members=2, seed=5,
                     sampler="ddim")
    assert full.attrs["downscaling_sampler"] == "ddim"
    assert not np.allclose(full["gpp"].values, x["gpp"].values)
    with pytest.raises(DownscaleInputError, match="no distilled sampler of 3"):
        downscale(coarse[3], loaded, factor=K, date=DATES[3], steps=3, sampler="distilled")
    with pytest.raises(DownscaleInputError, match="power of two"):
        distill(loaded, coarse[:3], fine[:3], dates=DATES[:3], factor=K, steps=3, start=8)


@pytest.mark.filterwarnings("ignore:No training pair of this scheme-s3 fit has a prior")  # the point here
def test_history_images_are_priors_of_their_own_group_only():
    from unique_xr.downscale.api import training_set

    coarse, fine = _series(n=2, shape=(64, 64))
    cfg = DownscaleConfig.preset("quick", train_steps=2)
    has = 1 + 2 + PRIOR_CHANNELS.index("has_prior")  # target, coarse + mask, then the prior channels

    def prior_share(**kw):
        _, patches, _ = training_set(coarse[1:], fine[1:], scheme="s3", factor=K, config=cfg, dates=DATES[1:2],
                                     prior_dropout=0.0, **kw)
        return float(patches[:, has].mean())

    assert prior_share() == 0.0  # one pair, nothing earlier
    assert prior_share(history=[(DATES[0], "a", fine[0])], groups=["a"]) == 1.0  # an earlier image of the place
    assert prior_share(history=[(DATES[0], "b", fine[0])], groups=["a"]) == 0.0  # another place's image
    assert prior_share(history=[(DATES[2], "a", fine[0])], groups=["a"]) == 0.0  # a later image
