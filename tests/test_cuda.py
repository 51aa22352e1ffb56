"""CUDA path (run by `make gpu-check`; skipped without a GPU): the feature bank on the device,
training with and without device-resident features, inference against the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from co2net_pipeline.method.feature_bank import FeatureBank
from co2net_pipeline.method.inference import run_inference
from co2net_pipeline.method.losses import LossConfig
from co2net_pipeline.method.model import ModelConfig, build_model
from co2net_pipeline.method.sampler import batch_snippet_indices, make_sampling_plan
from co2net_pipeline.method.training import TrainConfig, train_model

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

D, C, N = 8, 3, 12


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    ids = [f"v{i:02d}" for i in range(N)]
    feats = {
        v: rng.standard_normal((int(rng.integers(20, 60)), 2 * D)).astype(np.float32) for v in ids
    }
    labels = np.zeros((N, C), np.float32)
    labels[np.arange(N), np.arange(N) % C] = 1
    return ids, feats, labels


def test_device_bank_gathers_what_the_host_bank_gathers(data):
    ids, feats, _ = data
    cuda = torch.device("cuda")
    on_gpu = FeatureBank(feats, np.array(ids), cuda, True, True)
    on_host = FeatureBank(feats, np.array(ids), cuda, False, True)
    assert (on_gpu.mode, on_host.mode) == ("device", "host")
    rng = np.random.default_rng(1)
    for _ in range(5):
        videos = rng.choice(N, size=4, replace=False)
        idx = batch_snippet_indices(on_host.lengths[videos], rng.integers(0, 2**31, 4), 16)
        assert torch.equal(on_gpu.gather(videos, idx), on_host.gather(videos, idx))


@pytest.mark.parametrize("bf16", [False, True])
def test_training_on_cuda(data, bf16):
    ids, feats, labels = data
    plan = make_sampling_plan(ids, labels, 6, batch_size=4, n_similar=1, seed=1)
    model = ModelConfig(feature_dim=D, n_classes=C, attention_hidden=8)
    histories = []
    for on_device in (True, False):
        cfg = TrainConfig(
            max_iter=6,
            interval=3,
            max_seqlen=16,
            lr=1e-3,
            batch_size=4,
            n_similar=1,
            device="cuda",
            bf16=bf16,
            features_on_device=on_device,
        )
        result = train_model(
            feats,
            dict(zip(ids, labels, strict=True)),
            plan,
            model,
            LossConfig(),
            cfg,
            progress=False,
        )
        assert np.isfinite(result.history.drop(columns="iteration").to_numpy()).all()
        histories.append(result.history.to_numpy())
    np.testing.assert_array_equal(histories[0], histories[1])


def test_inference_on_cuda_matches_cpu(data):
    _, feats, _ = data
    torch.manual_seed(0)
    model = build_model(ModelConfig(feature_dim=D, n_classes=C, attention_hidden=8))
    cpu = run_inference(model, feats, "cpu")
    gpu = run_inference(model, feats, "cuda")
    for vid in feats:
        np.testing.assert_allclose(gpu[vid]["cas"], cpu[vid]["cas"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(
            gpu[vid]["attention"], cpu[vid]["attention"], rtol=1e-4, atol=1e-4
        )
