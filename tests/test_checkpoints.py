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
