"""The CO2-Net training loop: device, seeding, checkpoints, resume, model selection (spec §4).

All randomness of a run comes from two places: the sampling plan (video choice and each
row's `snippet_seed`, see `co2net_pipeline.method.sampler`) and the torch generator (initial
weights, dropout), whose state is checkpointed. A resumed run on CPU therefore reaches
bit-identical weights to an uninterrupted one.

`TrainConfig` fields (defaults: conf/base's synthetic CPU run; the reference THUMOS14 run.sh
has lr 5e-5, max_iter 5000, interval 200: conf/thumos14):
    lr, weight_decay: Adam (betas 0.9/0.999, eps 1e-8) with coupled L2 weight decay and
        constant lr, as the reference (ActivityNet: lr 3e-5, weight_decay 5e-4).
    max_seqlen: snippets sampled per training video (THUMOS 500 (paper, run.sh since
        2022-04) or 320 (older README/options); ActivityNet 60).
    batch_size, n_similar: videos per batch and class-sharing pairs at its front.
    max_iter: optimiser steps (run.sh 5000; README 20000; ActivityNet 22000).
    interval: checkpoint and selection scoring after iteration `itr` (0-based) whenever
        itr % interval == 0 and itr > 0, i.e. after 201, 401, ... steps (reference quirk).
    seed: seeds Python, NumPy and torch before the model is built (reference 3552).
    device: "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:1", ...
    bf16: bfloat16 autocast of the forward pass on CUDA or CPU (losses, gradients and
        Adam state stay float32). Fast on GPUs and on CPUs with AMX / AVX512-BF16; on
        other CPUs it is emulated and slower than float32 (a warning says so).
    selection: "last" (final weights), "heldout" or "oracle_test" (best `selection_score`
        at the scoring iterations; "oracle_test" is the reference protocol, which scores
        on the test set, so its numbers are test-selected).
    resume: continue from `checkpoint_dir/last.pt` when it exists.
    deterministic: deterministic torch algorithms and cuDNN (reference sets
        cudnn.deterministic); restored to the previous settings afterwards.
    features_on_device: keep all train features on the device as one float32 tensor and
        gather batches there (no host->device copy of batches). None (default): on GPUs
        when the features take under half of the free device memory (THUMOS14's train
        set: 0.54 GB), never on CPU.
    feature_memory_gb: host memory the train features may take (None = no limit). Given
        a lazy store view (`FeatureStore.view`) larger than this, batches are read from
        the HDF5 store per iteration through a video cache (`feature_bank.FeatureBank`).
    sampling: "random" (stratified random, reference) or "uniform".
    closed_upper: reference sampler quirk (closed bin range), see
        `sampling.stratified_snippet_indices`.
    truncate_to_valid_length: reference quirk: each batch is cut to the largest number
        of sampled snippets with any non-zero feature (all-zero snippet rows are treated
        as padding); only changes anything when features contain all-zero rows.
    score_final_iteration: also score the final weights (the reference never does: its
        last scoring point is the last multiple of `interval` before max_iter).
    fused_adam: use the fused Adam kernel on CUDA (same maths, fewer launches).
    metrics_every: fetch the logged loss values from the device every n iterations
        (0 = auto: every iteration on CPU, every 25 on GPUs, where waiting for each
        step's values would stop the host from queueing the next step). Checkpoints,
        scoring points and the final iteration always fetch; `on_metrics` then runs for
        the buffered iterations in order. Results do not depend on it.
    cpu_threads: torch intra-op threads during training (None = torch's default). Small
        models train faster on 1 thread, and extra OpenMP threads stall badly when other
        processes share the cores; restored afterwards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from co2net_pipeline.common.config import dataclass_from_dict
from co2net_pipeline.method.checkpoints import (
    BEST_NAME,
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    check_resume,
    load_checkpoint,
    save_checkpoint,
)
from co2net_pipeline.method.feature_bank import FeatureBank as _FeatureBank
from co2net_pipeline.method.feature_bank import to_device as _to_device
from co2net_pipeline.method.losses import LossConfig, co2net_loss
from co2net_pipeline.method.model.co2net import CO2Net, ModelConfig, ModelOutputs, build_model
from co2net_pipeline.method.sampler import PLAN_COLUMNS, ReferenceBatchStream, batch_snippet_indices

logger = logging.getLogger(__name__)

Selection = Literal["last", "heldout", "oracle_test"]
Sampling = Literal["random", "uniform"]
SELECTIONS: tuple[str, ...] = get_args(Selection)


@dataclass
class TrainConfig:
    """Optimisation and loop settings: the single list of the `training` parameters the loop
    reads, their types and defaults (`params.schema` derives the checked group from it, adding
    the training node's checkpoint_dir, log_every and progress; conf/base prints the defaults).
    Each field is described in the module docstring."""

    lr: float = 1e-3
    weight_decay: float = 1e-3
    max_seqlen: int = 500
    batch_size: int = 10
    n_similar: int = 3
    max_iter: int = 2000
    interval: int = 500
    seed: int = 3552
    device: str = "auto"
    bf16: bool = False
    selection: Selection = "last"
    resume: bool = False
    deterministic: bool = True
    features_on_device: bool | None = None
    feature_memory_gb: float | None = None
    sampling: Sampling = "random"
    closed_upper: bool = True
    truncate_to_valid_length: bool = True
    score_final_iteration: bool = False
    fused_adam: bool = True
    cpu_threads: int | None = 1
    metrics_every: int = 0

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValueError(
                f"TrainConfig.selection={self.selection!r}: expected one of {SELECTIONS}"
            )
        if self.sampling not in get_args(Sampling):
            raise ValueError(
                f"TrainConfig.sampling={self.sampling!r}: expected 'random' or 'uniform'"
            )
        if self.metrics_every < 0:
            raise ValueError(f"TrainConfig.metrics_every must be >= 0, got {self.metrics_every}")
        for name in ("max_seqlen", "batch_size", "interval"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_iter < 0:
            raise ValueError(f"TrainConfig.max_iter must be >= 0, got {self.max_iter}")
        if self.batch_size < 2 * self.n_similar:
            raise ValueError(
                f"TrainConfig.batch_size={self.batch_size} cannot hold n_similar={self.n_similar} pairs"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TrainConfig:
        """Build from a dictionary of `TrainConfig` fields; unknown keys are an error."""
        return dataclass_from_dict(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """Outcome of `train_model`.

    model: the selected weights in a CO2Net on CPU, eval mode; state_dict: those weights
    (CPU tensors); history: one row per iteration (iteration + each loss term + total);
    selected_iteration: 0-based iteration after which the selected weights were taken;
    selection: the rule used ("last", "heldout", "oracle_test"); selection_note: how the
    choice was made; selection_scores: (iteration, score) at every scoring point;
    seconds_per_iteration: mean wall time of the iterations run in this call; test_curve:
    one row per test-set scoring point (iteration + metrics), empty when off.
    """

    model: CO2Net
    state_dict: dict[str, torch.Tensor]
    history: pd.DataFrame
    selected_iteration: int
    selection: str
    selection_note: str
    selection_scores: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"iteration": [], "score": []})
    )
    seconds_per_iteration: float = float("nan")
    device: str = "cpu"
    test_curve: pd.DataFrame = field(default_factory=pd.DataFrame)


def select_device(name: str = "auto") -> torch.device:
    """ "auto" -> CUDA if available else CPU; otherwise the named device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def bf16_is_fast(device: torch.device | str) -> bool:
    """bf16 autocast pays off on CUDA and on CPUs with AMX / AVX512-BF16 (other AVX-512 CPUs
    only emulate bf16 in oneDNN)."""
    if torch.device(device).type == "cuda":
        return True
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def seed_everything(seed: int) -> None:
    """Seed Python `random`, PYTHONHASHSEED (child processes), NumPy's global RNG and torch
    (CPU and all CUDA devices), as the reference `setup_seed`."""
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _RunSettings:
    """Determinism flags and CPU threads for the duration of training; previous settings
    restored afterwards."""

    def __init__(self, enabled: bool, device: torch.device, cpu_threads: int | None) -> None:
        self.enabled = enabled
        self.cpu_threads = cpu_threads
        # The CPU kernels CO2-Net uses are deterministic already, and the first call of
        # torch.use_deterministic_algorithms imports the compiler stack (~5 s), so it is only
        # switched for CUDA.
        self.global_switch = enabled and device.type == "cuda"

    def __enter__(self) -> None:
        self.threads = torch.get_num_threads()
        if self.cpu_threads:
            torch.set_num_threads(int(self.cpu_threads))
        self.saved = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark,
        )
        if self.enabled:
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        if self.global_switch:
            # cuBLAS needs this before its first use to be deterministic.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.threads)
        det, warn_only, cudnn_det, cudnn_bench = self.saved
        if self.global_switch:
            torch.use_deterministic_algorithms(det, warn_only=warn_only)
        torch.backends.cudnn.deterministic = cudnn_det
        torch.backends.cudnn.benchmark = cudnn_bench


class _Plan:
    """The sampling plan as (max_iter, B) arrays of video numbers and snippet seeds."""

    def __init__(self, plan: pd.DataFrame, n_iterations: int, batch_size: int) -> None:
        missing = [c for c in PLAN_COLUMNS if c not in plan.columns]
        if missing:
            raise ValueError(f"sampling plan lacks columns {missing}")
        rows = plan[plan["iteration"] < n_iterations].sort_values(["iteration", "slot"])
        if len(rows) != n_iterations * batch_size or (
            n_iterations
            and not np.array_equal(
                rows["iteration"].to_numpy(), np.repeat(np.arange(n_iterations), batch_size)
            )
        ):
            raise ValueError(
                f"sampling plan must hold exactly {batch_size} slots for each of iterations "
                f"0..{n_iterations - 1}; it has {len(rows)} rows below iteration {n_iterations}"
            )
        ids = rows["video_id"].astype(str).to_numpy()
        self.video_ids, codes = np.unique(ids, return_inverse=True)
        self.videos = codes.reshape(n_iterations, batch_size)
        self.seeds = rows["snippet_seed"].to_numpy(dtype=np.int64).reshape(n_iterations, batch_size)

    def digest(self, n_iterations: int) -> str:
        """Fingerprint of the first n iterations (what a checkpoint has consumed)."""
        h = hashlib.sha256()
        h.update(
            np.ascontiguousarray(self.video_ids[self.videos[:n_iterations]]).astype("U").tobytes()
        )
        h.update(np.ascontiguousarray(self.seeds[:n_iterations]).tobytes())
        return h.hexdigest()


def _label_matrix(labels: Mapping[str, np.ndarray], video_ids: np.ndarray) -> np.ndarray:
    rows = []
    for vid in video_ids:
        if vid not in labels:
            raise ValueError(f"{vid}: in the sampling plan but has no labels")
        rows.append(np.asarray(labels[vid], dtype=np.float32).reshape(-1))
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ValueError(f"labels have different lengths {sorted(widths)}")
    return np.stack(rows)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _reference_batch(stream: ReferenceBatchStream, plan: _Plan, itr: int) -> np.ndarray:
    """Snippet indices (B, max_seqlen) of iteration `itr` from the reference stream, after
    checking that the stream draws the plan's videos."""
    rows, idx = stream.next_batch()
    drawn = stream.video_ids[rows]
    planned = plan.video_ids[plan.videos[itr]]
    if not np.array_equal(drawn, planned):
        raise ValueError(
            f"iteration {itr}: the reference stream drew {list(drawn)} but the sampling plan "
            f"holds {list(planned)}; rebuild the plan with the same seed and rng='original'"
        )
    return idx


def train_step(
    model: CO2Net,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_cfg: LossConfig,
    autocast: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One reference iteration on a batch: forward (dropout as the model's mode says), the
    §3.7 loss, `zero_grad`, `backward`, one optimiser step.

    x: (B, T, 2D) snippet features; y: (B, C) multi-hot. Returns (total loss before the
    update, {term: unweighted value}). `autocast` runs the forward in bf16; the loss is float32.
    """
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
        out = model(x)
    if autocast:
        out = ModelOutputs(*(t.float() for t in out))
    total, terms = co2net_loss(out, y, loss_cfg)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return total, terms


def train_model(
    features: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    plan: pd.DataFrame,
    model_cfg: ModelConfig,
    loss_cfg: LossConfig,
    train_cfg: TrainConfig,
    checkpoint_dir: Path | None = None,
    on_metrics: Callable[[int, dict[str, float]], None] | None = None,
    selection_score: Callable[[nn.Module, int], float] | None = None,
    progress: bool = True,
    reference_stream: ReferenceBatchStream | None = None,
    test_curve: Callable[[nn.Module, int], dict[str, float]] | None = None,
    test_curve_every: int = 0,
) -> TrainResult:
    """Train CO2-Net (spec §4.4) on the batches of a sampling plan.

    features: video_id -> (T, 2D) snippet features of the train videos; labels:
    video_id -> (C,) multi-hot; plan: `sampling.make_sampling_plan` output covering
    iterations 0..max_iter-1. Per iteration: forward in train mode (dropout on), the §3.7 loss,
    one Adam step. `on_metrics(iteration, {term: value, "total": value})` is called once per
    iteration, in order (plus "selection_score" at scoring points); on GPUs in bursts, every
    `metrics_every` iterations. At every scoring point
    (itr % interval == 0, itr > 0) `last.pt` is written atomically to `checkpoint_dir` (also
    after the final iteration) and, for selection "heldout"/"oracle_test",
    `selection_score(model_in_eval_mode, itr)` is called (higher is better; the first best is
    kept, as the reference's strict `>`); the best weights also go to `best.pt`.

    reference_stream: when given (`snippet_sampling.rng: original`), each iteration's snippet
    indices come from the reference's legacy-NumPy stream instead of the plan's seeds; the
    stream must name the plan's videos (the plan was drawn from the same stream).
    test_curve: `test_curve(model_in_eval_mode, itr) -> {metric: value}`, called every
    `test_curve_every` iterations (itr > 0) and after the last one; its values are recorded
    (`TrainResult.test_curve`, with `reference_point` 1 at the original's test points and 0 at
    the extra final one), never used for selection. Scoring runs with the torch RNG
    forked, so the curve does not change training.
    """
    if train_cfg.selection != "last" and selection_score is None:
        raise ValueError(f"selection={train_cfg.selection!r} needs a selection_score callable")
    if test_curve_every < 0:
        raise ValueError(f"test_curve_every must be >= 0, got {test_curve_every}")
    if loss_cfg.n_similar != train_cfg.n_similar:
        # The co-activity loss must use exactly the pairs the sampler put in the batch.
        logger.warning(
            "LossConfig.n_similar=%d replaced by TrainConfig.n_similar=%d",
            loss_cfg.n_similar,
            train_cfg.n_similar,
        )
        loss_cfg = dataclasses.replace(loss_cfg, n_similar=train_cfg.n_similar)
    batches = _Batches(features, labels, plan, model_cfg, train_cfg, reference_stream)
    # the features' identity: a resume on re-ingested data is refused (`check_resume`)
    fingerprint = getattr(features, "fingerprint", None)
    run = _Run(batches, model_cfg, loss_cfg, checkpoint_dir, fingerprint)
    scoring = _Scoring(
        train_cfg, selection_score, test_curve if test_curve_every else None, test_curve_every
    )
    with _RunSettings(train_cfg.deterministic, run.device, train_cfg.cpu_threads):
        seed_everything(train_cfg.seed)
        run.build()
        last = run.checkpoints.path
        if train_cfg.resume and last is not None and last.exists():
            run.checkpoints.restore(run.model, run.optimizer, run.state)
        seconds = run.loop(scoring, on_metrics, progress)
    return _train_result(run, seconds)


class _Batches:
    """The run's inputs on the device (plan, feature bank, label rows) and each iteration's
    batch: snippet indices from the plan's seeds, or from the reference stream when given."""

    def __init__(
        self,
        features: Mapping[str, np.ndarray],
        labels: Mapping[str, np.ndarray],
        plan: pd.DataFrame,
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        reference_stream: ReferenceBatchStream | None,
    ) -> None:
        self.cfg = train_cfg
        self.plan = _Plan(plan, int(train_cfg.max_iter), train_cfg.batch_size)
        self.device = select_device(train_cfg.device)
        self.bank = _FeatureBank(
            features,
            self.plan.video_ids,
            self.device,
            train_cfg.features_on_device,
            train_cfg.truncate_to_valid_length,
            memory_budget_gb=train_cfg.feature_memory_gb,
        )
        if self.bank.width != 2 * model_cfg.feature_dim:
            raise ValueError(
                f"features have {self.bank.width} columns, expected {2 * model_cfg.feature_dim} "
                f"(2 x ModelConfig.feature_dim)"
            )
        label_rows = torch.from_numpy(_label_matrix(labels, self.plan.video_ids))
        if label_rows.shape[1] != model_cfg.n_classes:
            raise ValueError(
                f"labels have {label_rows.shape[1]} classes, expected {model_cfg.n_classes}"
            )
        self.label_rows = label_rows.to(self.device)
        self.reference_stream = reference_stream

    def __call__(self, itr: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, T, 2D) and labels (B, C) of iteration `itr`, on the device."""
        videos = self.plan.videos[itr]
        if self.reference_stream is None:
            idx = batch_snippet_indices(
                self.bank.lengths[videos],
                self.plan.seeds[itr],
                self.cfg.max_seqlen,
                self.cfg.sampling,
                closed_upper=self.cfg.closed_upper,
            )
        else:
            idx = _reference_batch(self.reference_stream, self.plan, itr)
        if self.cfg.truncate_to_valid_length:
            idx = idx[:, : max(1, self.bank.valid_length(videos, idx))]
        return self.bank.gather(videos, idx), self.label_rows[_to_device(videos, self.device)]


@dataclass
class _RunState:
    """What a checkpoint restores besides the weights, the optimiser and the RNG: the loss
    history, the selection scores, the test curve, the best weights, the next iteration."""

    history: list[dict[str, float]] = field(default_factory=list)
    scores: list[tuple[int, float]] = field(default_factory=list)
    curve: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, Any] = field(
        default_factory=lambda: {"iteration": None, "score": -float("inf"), "state": None}
    )
    start: int = 0


class _Checkpoints:
    """`last.pt` (everything a resume needs) and `best.pt` (the selected weights) in
    `checkpoint_dir`; nothing is written without one."""

    def __init__(
        self,
        checkpoint_dir: Path | None,
        plan: _Plan,
        device: torch.device,
        configs: tuple[ModelConfig, LossConfig, TrainConfig],
        data_fingerprint: str | None,
    ) -> None:
        self.path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.plan, self.device, self.configs = plan, device, configs
        self.data_fingerprint = data_fingerprint

    def save(
        self, itr: int, model: nn.Module, optimizer: torch.optim.Optimizer, state: _RunState
    ) -> None:
        if self.path is None:
            return
        model_cfg, loss_cfg, train_cfg = self.configs
        columns = list(state.history[0]) if state.history else []
        save_checkpoint(
            {
                "format": CHECKPOINT_FORMAT,
                "iteration": itr,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": _rng_state(self.device),
                "history_columns": columns,
                "history": [[row[c] for c in columns] for row in state.history],
                "scores": state.scores,
                "test_curve": state.curve,
                "best_iteration": state.best["iteration"],
                "best_score": state.best["score"],
                "best_state": state.best["state"],
                "plan_digest": self.plan.digest(itr + 1),
                "data_fingerprint": self.data_fingerprint,
                "model_config": model_cfg.to_dict(),
                "loss_config": loss_cfg.to_dict(),
                "train_config": train_cfg.to_dict(),
            },
            self.path,
        )

    def save_best(self, weights: dict[str, torch.Tensor]) -> None:
        if self.path is not None:
            save_checkpoint(weights, self.path.with_name(BEST_NAME))

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: _RunState) -> None:
        """Weights, optimiser, RNG and `state` from `last.pt`, after checking it fits this run."""
        ckpt = load_checkpoint(self.path)
        check_resume(ckpt, *self.configs, self.plan, self.path, self.data_fingerprint)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        _set_rng_state(ckpt["rng"], self.device)
        state.history = [
            dict(zip(ckpt["history_columns"], row, strict=True)) for row in ckpt["history"]
        ]
        state.scores = [(int(i), float(s)) for i, s in ckpt["scores"]]
        state.curve = [dict(row) for row in ckpt.get("test_curve", [])]
        state.best = {
            "iteration": ckpt["best_iteration"],
            "score": float(ckpt["best_score"]),
            "state": ckpt["best_state"],
        }
        state.start = int(ckpt["iteration"]) + 1
        logger.info("resuming from %s at iteration %d", self.path, state.start)


class _Scoring:
    """Selection scores (and the best weights) at the scoring points, and the test curve every
    `test_curve_every` iterations; both in eval mode with the torch RNG forked."""

    def __init__(
        self,
        train_cfg: TrainConfig,
        selection_score: Callable[[nn.Module, int], float] | None,
        test_curve: Callable[[nn.Module, int], dict[str, float]] | None,
        test_curve_every: int,
    ) -> None:
        self.cfg = train_cfg
        self.selection_score, self.test_curve = selection_score, test_curve
        self.test_curve_every = int(test_curve_every)

    def __call__(self, run: _Run, itr: int, is_point: bool, is_final: bool) -> dict[str, float]:
        """Selection score and test-curve point where due; returns the extra metrics."""
        extra: dict[str, float] = {}
        model, state = run.model, run.state
        if self.cfg.selection != "last" and (
            is_point or (is_final and self.cfg.score_final_iteration)
        ):
            select = self.selection_score
            score = float(_in_eval_mode(model, lambda m: select(m, itr), run.device))
            state.scores.append((itr, score))
            extra["selection_score"] = score
            if score > state.best["score"]:
                state.best = {"iteration": itr, "score": score, "state": _cpu_state(model)}
                run.checkpoints.save_best(state.best["state"])
        due = itr > 0 and itr % max(1, self.test_curve_every) == 0
        if self.test_curve is not None and (due or is_final):
            curve = self.test_curve
            values = _in_eval_mode(model, lambda m: curve(m, itr), run.device)
            # 0 marks the extra final point: the original never scores it
            state.curve.append({"iteration": float(itr), **values, "reference_point": float(due)})
        return extra


class _Run:
    """One training run: the batches, the model and optimiser, the run state and its
    checkpoints; `loop` drives the iterations. data_fingerprint: the features' identity, kept
    in the checkpoints."""

    def __init__(
        self,
        batches: _Batches,
        model_cfg: ModelConfig,
        loss_cfg: LossConfig,
        checkpoint_dir: Path | None,
        data_fingerprint: str | None,
    ) -> None:
        train_cfg = batches.cfg
        self.model_cfg, self.loss_cfg, self.cfg = model_cfg, loss_cfg, train_cfg
        self.max_iter = int(train_cfg.max_iter)
        self.batches = batches
        self.device = batches.device
        self.checkpoints = _Checkpoints(
            checkpoint_dir,
            batches.plan,
            self.device,
            (model_cfg, loss_cfg, train_cfg),
            data_fingerprint,
        )
        self.state = _RunState()

    def build(self) -> None:
        # Built directly on the device, as the reference (default tensor type CUDA) does, so
        # the initial weights come from that device's generator.
        with torch.device(self.device):
            self.model = build_model(self.model_cfg)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=self.cfg.lr,
            weight_decay=self.cfg.weight_decay,
            fused=bool(self.cfg.fused_adam and self.device.type == "cuda") or None,
        )

    def loop(
        self,
        scoring: _Scoring,
        on_metrics: Callable[[int, dict[str, float]], None] | None,
        progress: bool,
    ) -> float:
        """Iterations start..max_iter-1; returns seconds per iteration."""
        autocast = bool(self.cfg.bf16)
        if autocast and not bf16_is_fast(self.device):
            logger.warning("bf16 on a CPU without AMX / AVX512-BF16 is slower than float32")
        start = self.state.start
        if self.batches.reference_stream is not None:
            self.batches.reference_stream.skip(start)
        self.model.train()
        t0 = time.perf_counter()
        every = self.cfg.metrics_every or (1 if self.device.type == "cpu" else 25)
        metrics = _MetricsBuffer(every, self.state.history, on_metrics)
        bar = _progress_bar(start, self.max_iter, progress)
        for itr in bar:
            x, y = self.batches(itr)
            total, terms = train_step(self.model, self.optimizer, x, y, self.loss_cfg, autocast)
            is_point = itr > 0 and itr % self.cfg.interval == 0
            is_final = itr == self.max_iter - 1
            metrics.add(itr, terms, total)
            extra = scoring(self, itr, is_point, is_final)
            if is_point or is_final or metrics.full():
                bar.set_postfix(loss=f"{metrics.flush(itr, extra):.4f}", refresh=False)
            if is_point or is_final:
                self.checkpoints.save(itr, self.model, self.optimizer, self.state)
                metrics.reset_running()
        bar.close()
        n_run = self.max_iter - start
        return (time.perf_counter() - t0) / n_run if n_run > 0 else float("nan")


def _progress_bar(start: int, max_iter: int, progress: bool) -> tqdm:
    return tqdm(
        range(start, max_iter),
        initial=start,
        total=max_iter,
        disable=not progress,
        desc="train",
        # redirected output (logs, CI) gets a line every 30 s instead of one per update
        mininterval=0.1 if sys.stderr.isatty() else 30.0,
        dynamic_ncols=True,
    )


def _train_result(run: _Run, seconds: float) -> TrainResult:
    """The selected weights (in the run's model, moved to CPU, eval mode) and the records."""
    final_iteration = run.max_iter - 1
    cfg, best, scores = run.cfg, run.state.best, run.state.scores
    if cfg.selection == "last":
        state, selected, note = _cpu_state(run.model), final_iteration, "final weights"
    elif best["state"] is None:
        state, selected = _cpu_state(run.model), final_iteration
        note = "no scoring point reached (max_iter <= interval): final weights"
    else:
        state, selected = best["state"], int(best["iteration"])
        note = (
            f"best {cfg.selection} score {best['score']:.6g} at iteration {selected} "
            f"of {len(scores)} scored (higher is better)"
        )
    result_model = run.model.to("cpu")
    result_model.load_state_dict(state)
    result_model.eval()
    history = run.state.history
    columns = ["iteration", *[c for c in (history[0] if history else {}) if c != "iteration"]]
    curve = pd.DataFrame(run.state.curve)
    if not curve.empty:
        curve["iteration"] = curve["iteration"].astype(np.int64)
    return TrainResult(
        model=result_model,
        state_dict=state,
        history=pd.DataFrame(history, columns=columns),
        selected_iteration=selected,
        selection=cfg.selection,
        selection_note=note,
        selection_scores=pd.DataFrame(scores, columns=["iteration", "score"]),
        seconds_per_iteration=seconds,
        device=str(run.device),
        test_curve=curve,
    )


class _MetricsBuffer:
    """Loss values kept on the device and fetched every `every` iterations (one transfer for
    all of them), then appended to `history` and passed to `on_metrics` in order."""

    def __init__(
        self,
        every: int,
        history: list[dict[str, float]],
        on_metrics: Callable[[int, dict[str, float]], None] | None,
    ) -> None:
        self.every, self.history, self.on_metrics = every, history, on_metrics
        self.pending: list[tuple[int, torch.Tensor]] = []
        self.names: list[str] = []
        self.running, self.running_n = 0.0, 0

    def add(self, itr: int, terms: Mapping[str, torch.Tensor], total: torch.Tensor) -> None:
        self.names = [*terms, "total"]
        values = torch.stack([t.detach().float() for t in (*terms.values(), total)])
        self.pending.append((itr, values))

    def full(self) -> bool:
        return len(self.pending) >= self.every

    def flush(self, itr: int, extra: Mapping[str, float]) -> float:
        """Fetch every buffered iteration's values; `extra` goes with iteration `itr`.
        Returns the running mean of the total loss."""
        values = torch.stack([v for _, v in self.pending]).cpu().tolist()
        for (done, _), row in zip(self.pending, values, strict=True):
            metrics = dict(zip(self.names, row, strict=True))
            self.history.append({"iteration": done, **metrics})
            self.running += metrics["total"]
            self.running_n += 1
            if self.on_metrics is not None:
                self.on_metrics(done, metrics | dict(extra) if done == itr else metrics)
        self.pending.clear()
        return self.running / max(1, self.running_n)

    def reset_running(self) -> None:
        self.running, self.running_n = 0.0, 0


def _in_eval_mode(model: nn.Module, fn: Callable[[nn.Module], Any], device: torch.device) -> Any:
    """fn(model) in eval mode, then back to train mode; the torch RNG is forked so scoring
    cannot change the dropout stream of the following iterations (keeps resume and replay
    exact, and a run with a test curve equal to one without)."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        model.eval()
        try:
            return fn(model)
        finally:
            model.train()
