"""Training checkpoints: writing them safely, reading them back, and the resume-compatibility
check (the loop itself is in `co2net_pipeline.method.training`).

A checkpoint (`last.pt`, after every scoring point and the final iteration) holds the model,
optimiser and torch RNG states, the loss history, the selection scores and best weights, the
fingerprint of the sampling-plan prefix it consumed and the three configurations. It is written
through `co2net_pipeline.common.atomic` (unique temporary name, fsync, rename), so a killed run leaves
the previous complete checkpoint and two writers to one folder never collide. It is read with
`weights_only=True`: a checkpoint cannot execute code.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from co2net_pipeline.common.atomic import atomic_path
from co2net_pipeline.common.disk_space import DiskFullError, is_disk_full, require_free_space

__all__ = [
    "BEST_NAME",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "RESUME_KEYS",
    "CheckpointError",
    "check_resume",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_NAME = "last.pt"
BEST_NAME = "best.pt"
CHECKPOINT_FORMAT = 1
# TrainConfig fields that must agree between a checkpoint and the run resuming from it.
RESUME_KEYS = (
    "lr",
    "weight_decay",
    "max_seqlen",
    "batch_size",
    "n_similar",
    "interval",
    "seed",
    "selection",
    "sampling",
    "closed_upper",
    "truncate_to_valid_length",
    "bf16",
)
# What `training.train_model` writes; a file without these is not one of its checkpoints.
_REQUIRED = (
    "format",
    "iteration",
    "model",
    "optimizer",
    "rng",
    "plan_digest",
    "model_config",
    "loss_config",
    "train_config",
)
_WAYS_OUT = "delete it to start from iteration 0, or set training.resume=false"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file and the ways out."""


class _Plan(Protocol):
    def digest(self, n_iterations: int) -> str: ...


def save_checkpoint(obj: Any, path: str | Path) -> None:
    """`torch.save(obj)` to `path` atomically (unique temporary name, fsync, rename).

    A full disk is a `DiskFullError` naming `path`: checked before writing, and recognised after
    a failed write, where torch only says "unexpected pos"."""
    path = Path(path)
    needed = _tensor_bytes(obj)
    require_free_space(path, needed, "the checkpoint")
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except (OSError, RuntimeError) as exc:
        # the temporary file is gone again: less free space than the tensors means it was full
        if is_disk_full(exc) or shutil.disk_usage(path.parent).free < needed:
            raise DiskFullError(path, "while writing the checkpoint") from exc
        raise


def _tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in `obj` (nested dicts, lists, tuples): about its size on disk."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Mapping):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by `train_model`, on the CPU.

    Raises `CheckpointError` in one line naming the file and the ways out when it is empty,
    truncated, corrupt or not a training checkpoint (no traceback through torch's reader).
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: checkpoint is empty (0 bytes); {_WAYS_OUT}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises a dozen types for a damaged file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise CheckpointError(
            f"{path}: checkpoint is truncated or corrupt ({size} bytes; "
            f"{type(exc).__name__}: {reason}); {_WAYS_OUT}"
        ) from None
    missing = [k for k in _REQUIRED if not isinstance(ckpt, Mapping) or k not in ckpt]
    if missing:
        raise CheckpointError(
            f"{path}: not a co2net training checkpoint (lacks {', '.join(missing)}); {_WAYS_OUT}"
        )
    return dict(ckpt)


def check_resume(
    ckpt: Mapping[str, Any],
    model_cfg,
    loss_cfg,
    train_cfg,
    plan: _Plan,
    path: Path,
    data_fingerprint: str | None = None,
) -> None:
    """Refuse to resume from a checkpoint written for another configuration, plan or data.

    model_cfg / loss_cfg / train_cfg: the run's `ModelConfig`, `LossConfig`, `TrainConfig`;
    plan: has `digest(n)`, the fingerprint of the plan's first n iterations. data_fingerprint:
    the fingerprint of the features the run trains on (the feature store's); re-ingested
    features with the same videos give the same plan, so only this tells them apart. Not
    checked when either side has none (in-memory features, checkpoints from before).
    """

    def refuse(problem: str) -> CheckpointError:
        return CheckpointError(f"{path}: {problem}; {_WAYS_OUT}")

    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise refuse(f"unknown checkpoint format {ckpt.get('format')!r}")
    if ckpt["model_config"] != model_cfg.to_dict():
        raise refuse(f"written for model config {ckpt['model_config']}")
    if ckpt["loss_config"] != loss_cfg.to_dict():
        raise refuse(f"written for loss config {ckpt['loss_config']}")
    saved = ckpt["train_config"]
    current = train_cfg.to_dict()
    diff = {k: (saved.get(k), current[k]) for k in RESUME_KEYS if saved.get(k) != current[k]}
    if diff:
        raise refuse(f"train config differs from the checkpoint's: {diff}")
    itr = int(ckpt["iteration"])
    if itr >= train_cfg.max_iter:
        raise refuse(f"checkpoint at iteration {itr} is past max_iter={train_cfg.max_iter}")
    if ckpt["plan_digest"] != plan.digest(itr + 1):
        raise refuse("the sampling plan differs from the one the checkpoint used")
    saved_data = ckpt.get("data_fingerprint")
    if saved_data and data_fingerprint and saved_data != data_fingerprint:
        raise refuse(
            f"trained on other features (fingerprint {saved_data[:12]}, the feature store's "
            f"is {data_fingerprint[:12]}): the data changed since"
        )
