"""CUDA code paths of the downscaler (marked ``gpu``; skipped without CUDA) and the GPU resource annotation.

The GPU tests train, sample and predict on ``device="cuda"`` in bf16 and compare with the CPU in
fp32 or with themselves. The annotation that sends prediction tasks to GPU workers is also
checked on CPU, where it is asked for explicitly with ``resources={"GPU": 1}``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from unique_xr.downscale import DownscaleConfig, downscale, fit, load_downscaler
from unique_xr.downscale.conditioning import AuxSpec, Normalisation
from unique_xr.downscale.model import Downscaler
from unique_xr.downscale.tiling import position_noise

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def random_model(pairs):
    """A scheme-S2 ``quick`` network with random weights everywhere, the output layer included.

    ``Downscaler.new`` zeroes the output convolution (a trained model's starting point), which makes
    every prediction the upsampled coarse field; random output weights make the network's work show.
    """
    coarse, _fine, lc = pairs
    norm = Normalisation(field_mean=float(np.mean([c.values.mean() for c in coarse])), field_std=0.15,
                         residual_std=0.1, aux=(AuxSpec.fit("landcover", lc.values),))
    model = Downscaler.new(DownscaleConfig.preset("quick"), norm, "s2")
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.net.out.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return model.to("cpu")


def _kernel_annotations(ds, var: str) -> list:
    """Annotations of the prediction layer of ``ds[var]``'s graph, one entry per prediction task."""
    layers = ds[var].data.__dask_graph__().layers
    return [layer.annotations for name, layer in layers.items() if name.startswith("predict_block")
            for _ in range(len(layer))]


# --- on CPU: the annotation that routes the prediction tasks ---------------------------------------


def test_prediction_tasks_carry_the_resources_asked_for(random_model, pairs):
    coarse, _, lc = pairs
    # blocks at least as wide as the halo their tiles read (48 px here), so a 96 x 128 field in 48 x 64 chunks
    kw = {"aux": [lc.chunk({"y": 48, "x": 64})], "steps": 2, "device": "cpu"}
    gpu = downscale(coarse[0].chunk(), random_model, resources={"GPU": 1}, **kw)
    plain = downscale(coarse[0].chunk(), random_model, **kw)
    n_chunks = int(np.prod(gpu["ndvi"].data.numblocks))
    assert n_chunks == 4
    annotated = _kernel_annotations(gpu, "ndvi")
    assert len(annotated) == n_chunks
    assert all(a is not None and a["resources"] == {"GPU": 1} for a in annotated)
    # on CPU nothing is asked for unless it is requested
    assert len(_kernel_annotations(plain, "ndvi")) == n_chunks
    assert not any(a and "resources" in a for a in _kernel_annotations(plain, "ndvi"))
    # the annotation changes where tasks run, not what they compute (local schedulers ignore it)
    np.testing.assert_array_equal(gpu["ndvi"].values, plain["ndvi"].values)


def test_on_a_cluster_prediction_tasks_run_only_where_the_resource_is(random_model, pairs):
    """Two in-process workers, one advertising ``GPU=1``: every prediction task runs on that one.

    Low-level task fusion (``optimization.fuse.active``, on by default for arrays) merges each
    prediction task with the array tasks around it and drops the layer's annotations, after which
    the scheduler places it anywhere (dask/dask#7036, #10325); the annotation only holds with
    fusion off, as here.
    """
    pytest.importorskip("distributed")
    import dask
    from dask.utils import key_split
    from distributed import Client, Scheduler, SpecCluster, Worker, get_task_stream

    coarse, _, lc = pairs
    out = downscale(coarse[0].chunk(), random_model, aux=[lc.chunk({"y": 48, "x": 64})], steps=2, device="cpu",
                    resources={"GPU": 1})
    workers = {"gpu": {"cls": Worker, "options": {"nthreads": 1, "resources": {"GPU": 1}}},
               "cpu": {"cls": Worker, "options": {"nthreads": 2}}}
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
    with SpecCluster(scheduler=scheduler, workers=workers) as cluster, Client(cluster) as client:
        names = {address: w["name"] for address, w in client.scheduler_info()["workers"].items()}
        with dask.config.set({"optimization.fuse.active": False}), get_task_stream(client) as stream:
            result = out.compute()
    ran_on = [names[t["worker"]] for t in stream.data if key_split(t["key"]) == "predict_block"]
    assert len(ran_on) == 4 and set(ran_on) == {"gpu"}
    assert bool(np.isfinite(result["ndvi"]).all())


# --- on CUDA --------------------------------------------------------------------------------------


@pytest.mark.gpu
@needs_cuda
def test_fit_quick_model_on_cuda_in_bf16(pairs, tmp_path):
    coarse, fine, lc = pairs
    model = fit(coarse, fine, aux=[lc], scheme="s2", config=DownscaleConfig.preset("quick", train_steps=6),
                out=tmp_path, device="cuda", precision="bf16")
    record = model.card["training"]
    assert record["device"] == "cuda" and record["steps"] == 6
    assert np.isfinite(record["final_loss"]) and all(np.isfinite(record["loss_every_50"]))
    params = list(model.net.parameters())
    assert all(p.is_cuda for p in params)
    assert all(bool(torch.isfinite(p).all()) for p in params)
    # the folder written from the GPU loads on the CPU with the same weights
    on_cpu = load_downscaler(tmp_path, device="cpu")
    for (name, a), b in zip(on_cpu.net.state_dict().items(), model.net.state_dict().values()):
        assert torch.equal(a, b.cpu()), name


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_cuda_bf16_samples_match_cpu_fp32(random_model, pairs, sampler):
    """The same weights, conditioning and noise give the same samples within bf16 rounding.

    bf16 keeps 8 significant bits (unit roundoff 2**-9, 0.2 %). Under autocast the convolutions
    and linear layers run in bf16 with fp32 accumulation and the layer norms in fp32, so each of
    the network's ~20 layers adds a relative error of that order, and the sampler mixes them over
    its steps. The same comparison on CPU (bf16 autocast against fp32, this model, 4 steps) gives
    an RMS difference of 0.4-0.7 % of the samples' standard deviation and a largest difference of
    2-3 % of it; the bounds below (3 % and 15 %) leave room for GPU kernels that accumulate in another
    order while staying far below what a real change makes (another noise draw: about 140 %).
    """
    coarse, _, lc = pairs
    model = random_model
    from unique_xr.downscale.api import coarse_on_fine

    up = coarse_on_fine(coarse[0].values, 8)
    cond = model.norm.conditioning(up, [lc.values])
    tiles = np.stack([cond[:, 0:32, 0:32], cond[:, 32:64, 64:96], cond[:, 64:96, 96:128]])

    def noise(seed):
        return lambda k: np.stack([position_noise(seed, m, k, np.arange(32), np.arange(32))[None] for m in range(3)])

    reference = model.sampler_fn(steps=4, sampler=sampler, device="cpu", precision="fp32")(tiles, noise(0))
    other_noise = model.sampler_fn(steps=4, sampler=sampler, device="cpu", precision="fp32")(tiles, noise(1))
    on_gpu = model.sampler_fn(steps=4, sampler=sampler, device="cuda", precision="bf16")(tiles, noise(0))
    model.to("cpu")
    assert on_gpu.shape == reference.shape == (3, 32, 32) and on_gpu.dtype == np.float32
    scale = float(reference.std())
    assert scale > 0.1  # the network's output is not a constant
    rms = float(np.sqrt(np.mean((on_gpu - reference) ** 2)))
    assert rms < 0.03 * scale, (rms, scale)
    assert float(np.abs(on_gpu - reference).max()) < 0.15 * scale
    assert float(np.sqrt(np.mean((other_noise - reference) ** 2))) > 0.5 * scale


@pytest.mark.gpu
@needs_cuda
def test_tiled_prediction_on_cuda_does_not_depend_on_chunks(random_model, pairs):
    """One tile at a time (``batch_size=1``), every tile is the same computation whichever chunk asks
    for it, so two chunkings and the eager run agree to float32 blending round-off."""
    coarse, _, lc = pairs
    kw = {"members": 2, "steps": 3, "device": "cuda", "precision": "bf16", "batch_size": 1}
    eager = downscale(coarse[0], random_model, aux=[lc], **kw)
    runs = [downscale(coarse[0].chunk(), random_model, aux=[lc.chunk({"y": side, "x": side})], **kw)
            for side in (40, 64)]
    assert [r["ndvi"].data.numblocks for r in runs] == [(3, 4), (2, 2)]
    computed = [r.compute() for r in runs]
    for out in computed:
        for var in ("ndvi", "ndvi_spread"):
            assert out[var].shape == (96, 128) and bool(np.isfinite(out[var]).all())
            np.testing.assert_allclose(out[var].values, eager[var].values, rtol=0, atol=1e-5)
    # the network did something: the prediction is not the upsampled coarse field
    assert float(eager["ndvi_spread"].mean()) > 1e-3


@pytest.mark.gpu
@needs_cuda
def test_downscale_on_cuda_asks_dask_for_a_gpu(random_model, pairs):
    coarse, _, lc = pairs
    out = downscale(coarse[0].chunk(), random_model, aux=[lc.chunk({"y": 64, "x": 64})], steps=2, device="cuda")
    annotated = _kernel_annotations(out, "ndvi")
    assert len(annotated) == int(np.prod(out["ndvi"].data.numblocks)) == 4
    assert all(a is not None and a["resources"] == {"GPU": 1} for a in annotated)
    assert bool(np.isfinite(out["ndvi"].values).all())
