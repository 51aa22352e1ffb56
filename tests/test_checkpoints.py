"""Checkpoints: a damaged `last.pt` is one line with its path and the ways out; resume refuses a
checkpoint of another configuration; two writers to one folder never collide."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from co2net_pipeline.method.checkpoints import (
    CHECKPOINT_NAME,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from co2net_pipeline.method.losses import LossConfig
from co2net_pipeline.method.model import ModelConfig
from co2net_pipeline.method.sampler import make_sampling_plan
from co2net_pipeline.method.training import TrainConfig, train_model

D, C, N = 4, 2, 6
WAYS_OUT = "delete it to start from iteration 0, or set training.resume=false"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train(checkpoint_dir, **overrides):
    rng = np.random.default_rng(0)
    ids = [f"v{i}" for i in range(N)]
    labels = np.eye(C, dtype=np.float32)[np.arange(N) % C]
    feats = {v: rng.standard_normal((12, 2 * D)).astype(np.float32) for v in ids}
    cfg = TrainConfig(
        **{
            "max_iter": 4,
            "interval": 2,
            "max_seqlen": 8,
            "n_similar": 1,
            "batch_size": 4,
            "lr": 1e-3,
            **overrides,
        }
    )
    plan = make_sampling_plan(ids, labels, cfg.max_iter, batch_size=4, n_similar=1, seed=1)
    model = ModelConfig(feature_dim=D, n_classes=C, attention_hidden=4)
    return train_model(
        feats,
        dict(zip(ids, labels, strict=True)),
        plan,
        model,
        LossConfig(n_similar=1),
        cfg,
        checkpoint_dir,
        progress=False,
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real `last.pt` of a 4-iteration run."""
    folder = tmp_path_factory.mktemp("ckpt")
    _train(folder)
    return (folder / CHECKPOINT_NAME).read_bytes()


def _one_line(exc: pytest.ExceptionInfo, path) -> str:
    text = str(exc.value)
    assert "\n" not in text and text.startswith(f"{path}: ") and text.endswith(WAYS_OUT), text
    return text


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda b: b"", "checkpoint is empty (0 bytes)"),
        (lambda b: b[: len(b) // 2], "checkpoint is truncated or corrupt"),
        (lambda b: b"\x00" * 64, "checkpoint is truncated or corrupt"),
    ],
    ids=["empty", "truncated", "garbage"],
)
def test_damaged_checkpoint_is_one_line_with_path_and_ways_out(
    tmp_path, checkpoint, damage, expected
):
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(damage(checkpoint))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert expected in _one_line(info, path)


def test_resume_from_a_truncated_checkpoint_fails_before_writing(tmp_path, checkpoint):
    path = tmp_path / CHECKPOINT_NAME
    damaged = checkpoint[: len(checkpoint) // 3]
    path.write_bytes(damaged)
    with pytest.raises(CheckpointError, match="checkpoint is truncated or corrupt") as info:
        _train(tmp_path, resume=True)
    _one_line(info, path)
    assert path.read_bytes() == damaged  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]


def test_a_foreign_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="not a co2net training checkpoint") as info:
        load_checkpoint(path)
    _one_line(info, path)


def test_resume_with_another_configuration_names_the_difference(tmp_path, checkpoint):
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(checkpoint)
    with pytest.raises(CheckpointError, match=r"train config differs .*'lr': \(0.001, 0.002\)"):
        _train(tmp_path, resume=True, lr=2e-3)


def test_two_writers_to_one_folder_never_collide(tmp_path):
    path, errors = tmp_path / CHECKPOINT_NAME, []

    def writer(k: int) -> None:
        for i in range(25):
            try:
                save_checkpoint({"writer": k, "i": i, "w": torch.full((64,), float(k))}, path)
            except Exception as exc:  # noqa: BLE001 - any failure is the defect
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    last = torch.load(path, weights_only=True)
    assert torch.equal(last["w"], torch.full((64,), float(last["writer"])))
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]


def test_resume_on_re_ingested_features_is_refused(tmp_path):
    """Issue 24: same videos and plan, other feature values (re-synthesised, re-ingested): the
    checkpoint's data fingerprint no longer matches the feature store's."""
    from co2net_pipeline.data.store import FeatureStore, write_feature_store

    ids = [f"v{i}" for i in range(N)]
    labels = dict(zip(ids, np.eye(C, dtype=np.float32)[np.arange(N) % C], strict=True))

    def store(name: str, seed: int, fingerprint: str):
        rng = np.random.default_rng(seed)
        items = [(v, rng.standard_normal((12, 2 * D)).astype(np.float32)) for v in ids]
        write_feature_store(tmp_path / name, items, attrs={"fingerprint": fingerprint})
        return FeatureStore(tmp_path / name).view(ids)

    def train(features, max_iter: int, resume: bool):
        cfg = TrainConfig(max_iter=max_iter, interval=2, max_seqlen=8, n_similar=1,
                          batch_size=4, lr=1e-3, resume=resume)  # fmt: skip
        plan = make_sampling_plan(ids, np.stack(list(labels.values())), max_iter, 4, 1, seed=1)
        model = ModelConfig(feature_dim=D, n_classes=C, attention_hidden=4)
        folder = tmp_path / "ckpt"
        return train_model(features, labels, plan, model, LossConfig(n_similar=1), cfg,
                           folder, progress=False)  # fmt: skip

    old = store("old.h5", 0, "a" * 64)
    train(old, 4, resume=False)
    path = tmp_path / "ckpt" / CHECKPOINT_NAME
    assert torch.load(path, weights_only=True)["data_fingerprint"] == "a" * 64
    with pytest.raises(CheckpointError) as info:
        train(store("new.h5", 1, "b" * 64), 6, resume=True)
    text = _one_line(info, path)
    assert (
        "trained on other features (fingerprint aaaaaaaaaaaa, the feature store's is bbbb" in text
    )
    assert train(old, 6, resume=True).history["iteration"].max() == 5  # same data: resumes


@pytest.mark.parametrize("checked_first", [True, False])
def test_a_full_disk_says_no_space_left(small_disk, monkeypatch, checked_first):
    """Issue 24: a checkpoint on a full disk was a 260-line traceback ending "unexpected pos"."""
    from co2net_pipeline.common.disk_space import DiskFullError
    from co2net_pipeline.method import checkpoints

    folder, real = small_disk
    if not checked_first:
        if not real:
            pytest.skip("needs a real full file system (root, to mount a tmpfs)")
        # as if the disk filled between the check and the write: torch's own failure
        monkeypatch.setattr(checkpoints, "require_free_space", lambda *a, **k: None)
    path = folder / CHECKPOINT_NAME
    with pytest.raises(DiskFullError) as info:
        save_checkpoint({"model": {"w": torch.zeros(3 * 2**20)}}, path)  # 12 MiB, 5 MiB disk
    assert str(info.value).startswith(f"{path}: no space left on device")
    assert "\n" not in str(info.value) and list(folder.iterdir()) == []
