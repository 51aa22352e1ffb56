"""Feature bank: in-memory and read-from-store modes give the same batches and the same training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from co2net_pipeline.data.store import FeatureStore, write_feature_store
from co2net_pipeline.method.feature_bank import FeatureBank
from co2net_pipeline.method.losses import LossConfig
from co2net_pipeline.method.model import ModelConfig
from co2net_pipeline.method.sampler import batch_snippet_indices, make_sampling_plan
from co2net_pipeline.method.training import TrainConfig, train_model

D, C, N = 4, 3, 12
CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """N videos of 20-60 snippets, width 2·D, some all-zero trailing rows (valid-length quirk)."""
    rng = np.random.default_rng(0)
    feats = {}
    for i in range(N):
        t = int(rng.integers(20, 60))
        f = rng.standard_normal((t, 2 * D)).astype(np.float32)
        f[t - 3 :] = 0
        feats[f"v{i:02d}"] = f
    path = write_feature_store(tmp_path_factory.mktemp("bank") / "f.h5", feats.items())
    with FeatureStore(path) as fs:
        yield fs, feats


def test_store_mode_gathers_what_host_mode_gathers(store):
    fs, feats = store
    ids = np.array(sorted(feats))
    view = fs.view(ids)
    host = FeatureBank(feats, ids, CPU, False, True)
    # 1 KB budget: far below the subset; cache of two average videos.
    lazy = FeatureBank(view, ids, CPU, False, True, memory_budget_gb=1e-6, cache_gb=2e-6)
    assert (host.mode, lazy.mode) == ("host", "store")
    assert lazy.arrays is None and lazy.nbytes == view.nbytes == host.nbytes
    np.testing.assert_array_equal(lazy.lengths, host.lengths)
    rng = np.random.default_rng(1)
    for step in range(20):
        videos = rng.choice(N, size=4, replace=False)
        idx = batch_snippet_indices(host.lengths[videos], rng.integers(0, 2**31, 4), 16)
        assert lazy.valid_length(videos, idx) == host.valid_length(videos, idx)
        assert torch.equal(lazy.gather(videos, idx), host.gather(videos, idx)), step
    assert lazy._store.nbytes <= lazy._store.limit  # the LRU cache stays within its bound
    assert 0 < lazy.reads <= 20 * 4  # the cache saved some reads, never more than one per slot


def test_within_budget_the_view_is_loaded_once(store):
    fs, feats = store
    ids = np.array(sorted(feats))
    bank = FeatureBank(fs.view(ids), ids, CPU, False, False, memory_budget_gb=1.0)
    assert bank.mode == "host" and bank.valid_rows is None
    np.testing.assert_array_equal(bank.arrays[3], feats[ids[3]])


def test_bad_inputs_name_the_video(store):
    fs, feats = store
    with pytest.raises(ValueError, match="nope: in the sampling plan but has no features"):
        FeatureBank(feats, np.array(["v00", "nope"]), CPU, False, False)
    with pytest.raises(KeyError, match="no video 'nope' in the feature store"):
        fs.view(["nope"])


def test_training_from_the_store_equals_training_in_memory(store):
    """Same plan, seed and weights whether batches come from memory or from the HDF5 store."""
    fs, feats = store
    ids = sorted(feats)
    labels = np.zeros((N, C), np.float32)
    labels[np.arange(N), np.arange(N) % C] = 1
    label_map = dict(zip(ids, labels, strict=True))
    plan = make_sampling_plan(ids, labels, 4, seed=1, batch_size=4, n_similar=1)
    model = ModelConfig(feature_dim=D, n_classes=C, attention_hidden=8)
    results = []
    for features, budget in ((feats, None), (fs.view(ids), 1e-6)):
        cfg = TrainConfig(
            max_iter=4,
            interval=2,
            max_seqlen=16,
            lr=1e-3,
            batch_size=4,
            n_similar=1,
            feature_memory_gb=budget,
        )
        results.append(
            train_model(features, label_map, plan, model, LossConfig(), cfg, progress=False)
        )
    a, b = results
    np.testing.assert_array_equal(a.history.to_numpy(), b.history.to_numpy())
    for name, value in a.state_dict.items():
        assert torch.equal(value, b.state_dict[name]), name


def test_inference_from_a_store_view_equals_inference_from_memory(store):
    """Inference reads the store video by video (shapes from its index) with the same outputs."""
    from co2net_pipeline.method.inference import run_inference
    from co2net_pipeline.method.model import build_model

    fs, feats = store
    torch.manual_seed(0)
    model = build_model(ModelConfig(feature_dim=D, n_classes=C, attention_hidden=8))
    ids = sorted(feats)[:5]
    lazy = run_inference(model, fs.view(ids), "cpu")
    eager = run_inference(model, {v: feats[v] for v in ids}, "cpu")
    assert list(lazy) == ids
    for vid in ids:
        for key in ("cas", "attention"):
            np.testing.assert_array_equal(lazy[vid][key], eager[vid][key])
