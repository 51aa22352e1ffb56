"""The CO2-Net training loop: device, seeding, checkpoints, resume, model selection (spec §4).

All randomness of a run comes from two places: the sampling plan (video choice and each
row's `snippet_seed`, see `co2net_pipeline.sampling`) and the torch generator (initial
weights, dropout), whose state is checkpointed. A resumed run on CPU therefore reaches
bit-identical weights to an uninterrupted one.
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
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from co2net_pipeline.config import dataclass_from_dict
from co2net_pipeline.losses import LossConfig, co2net_loss
from co2net_pipeline.model.co2net import CO2Net, ModelConfig, ModelOutputs, build_model
from co2net_pipeline.sampling import PLAN_COLUMNS, batch_snippet_indices

logger = logging.getLogger(__name__)

SELECTIONS = ("last", "heldout", "oracle_test")
# Keys of the `training` parameters group that configure the Kedro node, not the loop.
NODE_KEYS = ("checkpoint_dir", "log_every", "progress")
CHECKPOINT_NAME = "last.pt"
BEST_NAME = "best.pt"
_CHECKPOINT_FORMAT = 1
# Fields that must agree between a checkpoint and the run resuming from it.
_RESUME_KEYS = (
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


@dataclass
class TrainConfig:
    """Optimisation and loop settings; defaults are the reference THUMOS14 run (run.sh).

    Attributes:
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

    lr: float = 5e-5
    weight_decay: float = 1e-3
    max_seqlen: int = 500
    batch_size: int = 10
    n_similar: int = 3
    max_iter: int = 5000
    interval: int = 200
    seed: int = 3552
    device: str = "auto"
    bf16: bool = False
    selection: str = "last"
    resume: bool = False
    deterministic: bool = True
    features_on_device: bool | None = None
    sampling: str = "random"
    closed_upper: bool = True
    truncate_to_valid_length: bool = True
    score_final_iteration: bool = False
    fused_adam: bool = True
    cpu_threads: int | None = None
    metrics_every: int = 0

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValueError(
                f"TrainConfig.selection={self.selection!r}: expected one of {SELECTIONS}"
            )
        if self.sampling not in ("random", "uniform"):
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
        """Build from a parameters dictionary; unknown keys are an error, except the ones the
        Kedro training node reads itself (`NODE_KEYS`: checkpoint_dir, log_every, progress)."""
        values = {k: v for k, v in (values or {}).items() if k not in NODE_KEYS}
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
    seconds_per_iteration: mean wall time of the iterations run in this call.
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


class _FeatureBank:
    """Train features on the host (dict of arrays) or on the device (one concatenated tensor)."""

    def __init__(
        self,
        features: Mapping[str, np.ndarray],
        video_ids: np.ndarray,
        device: torch.device,
        on_device: bool | None,
        need_valid_rows: bool,
    ) -> None:
        self.device = device
        self.arrays = []
        for vid in video_ids:
            if vid not in features:
                raise ValueError(f"{vid}: in the sampling plan but has no features")
            arr = np.asarray(features[vid])
            if arr.ndim != 2 or arr.shape[0] < 1:
                raise ValueError(f"{vid}: features have shape {arr.shape}, expected (T, 2D)")
            self.arrays.append(arr)
        widths = {a.shape[1] for a in self.arrays}
        if len(widths) != 1:
            raise ValueError(f"train features have different widths {sorted(widths)}")
        self.width = widths.pop()
        self.lengths = np.array([len(a) for a in self.arrays])
        self.valid_rows = [np.any(a != 0, axis=1) for a in self.arrays] if need_valid_rows else None
        self.bank: torch.Tensor | None = None
        if on_device is None:
            size = int(self.lengths.sum()) * self.width * 4
            on_device = device.type == "cuda" and size < torch.cuda.mem_get_info(device)[0] / 2
        if on_device:
            self.offsets = np.concatenate(([0], np.cumsum(self.lengths)[:-1]))
            self.bank = torch.empty(
                (int(self.lengths.sum()), self.width), dtype=torch.float32, device=device
            )
            for off, arr in zip(self.offsets, self.arrays, strict=True):
                self.bank[off : off + len(arr)] = torch.from_numpy(
                    np.ascontiguousarray(arr, dtype=np.float32)
                )
        # Host batches for CUDA are assembled in pinned memory and copied without waiting. Each
        # batch gets its own buffer: the step does not wait for the GPU, so a reused buffer
        # could be overwritten before its copy ran; the caching host allocator hands a block
        # out again only after its copy has completed.
        self.pin = device.type == "cuda" and not on_device

    def valid_length(self, videos: np.ndarray, idx: np.ndarray) -> int:
        """Largest number of sampled snippets with any non-zero value (reference seq_len)."""
        assert self.valid_rows is not None
        return int(max(self.valid_rows[v][i].sum() for v, i in zip(videos, idx, strict=True)))

    def gather(self, videos: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        """(B, T', 2D) float32 batch on the device; idx: (B, T') snippet indices."""
        if self.bank is not None:
            flat = _to_device((self.offsets[videos][:, None] + idx).ravel(), self.device)
            return self.bank.index_select(0, flat).view(len(videos), idx.shape[1], self.width)
        shape = (len(videos), idx.shape[1], self.width)
        host = torch.empty(shape, dtype=torch.float32, pin_memory=self.pin)
        out = host.numpy()
        for slot, (v, i) in enumerate(zip(videos, idx, strict=True)):  # loop over videos
            out[slot] = self.arrays[v][i]
        return host.to(self.device, non_blocking=self.pin)


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Small host array to the device; on CUDA through pinned memory without waiting."""
    tensor = torch.from_numpy(array)
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


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


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


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
    """
    if train_cfg.selection != "last" and selection_score is None:
        raise ValueError(f"selection={train_cfg.selection!r} needs a selection_score callable")
    if loss_cfg.n_similar != train_cfg.n_similar:
        # The co-activity loss must use exactly the pairs the sampler put in the batch.
        logger.warning(
            "LossConfig.n_similar=%d replaced by TrainConfig.n_similar=%d",
            loss_cfg.n_similar,
            train_cfg.n_similar,
        )
        loss_cfg = dataclasses.replace(loss_cfg, n_similar=train_cfg.n_similar)
    max_iter = int(train_cfg.max_iter)
    plan_arrays = _Plan(plan, max_iter, train_cfg.batch_size)
    device = select_device(train_cfg.device)
    bank = _FeatureBank(
        features,
        plan_arrays.video_ids,
        device,
        train_cfg.features_on_device,
        train_cfg.truncate_to_valid_length,
    )
    if bank.width != 2 * model_cfg.feature_dim:
        raise ValueError(
            f"features have {bank.width} columns, expected {2 * model_cfg.feature_dim} "
            f"(2 x ModelConfig.feature_dim)"
        )
    label_rows = torch.from_numpy(_label_matrix(labels, plan_arrays.video_ids)).to(device)
    if label_rows.shape[1] != model_cfg.n_classes:
        raise ValueError(
            f"labels have {label_rows.shape[1]} classes, expected {model_cfg.n_classes}"
        )
    checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
    if checkpoint_path is not None:
        checkpoint_path.parent.mkdir(parents=True, exist_ok=True)

    with _RunSettings(train_cfg.deterministic, device, train_cfg.cpu_threads):
        seed_everything(train_cfg.seed)
        # Built directly on the device, as the reference (default tensor type CUDA) does, so
        # the initial weights come from that device's generator.
        with torch.device(device):
            model = build_model(model_cfg)
        optimizer = torch.optim.Adam(
            model.parameters(),
            lr=train_cfg.lr,
            weight_decay=train_cfg.weight_decay,
            fused=bool(train_cfg.fused_adam and device.type == "cuda") or None,
        )
        history: list[dict[str, float]] = []
        scores: list[tuple[int, float]] = []
        best: dict[str, Any] = {"iteration": None, "score": -float("inf"), "state": None}
        start = 0
        if train_cfg.resume and checkpoint_path is not None and checkpoint_path.exists():
            ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
            _check_resume(ckpt, model_cfg, loss_cfg, train_cfg, plan_arrays, checkpoint_path)
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            _set_rng_state(ckpt["rng"], device)
            history = [
                dict(zip(ckpt["history_columns"], row, strict=True)) for row in ckpt["history"]
            ]
            scores = [(int(i), float(s)) for i, s in ckpt["scores"]]
            best = {
                "iteration": ckpt["best_iteration"],
                "score": float(ckpt["best_score"]),
                "state": ckpt["best_state"],
            }
            start = int(ckpt["iteration"]) + 1
            logger.info("resuming from %s at iteration %d", checkpoint_path, start)

        def save_checkpoint(itr: int) -> None:
            if checkpoint_path is None:
                return
            columns = list(history[0]) if history else []
            _atomic_save(
                {
                    "format": _CHECKPOINT_FORMAT,
                    "iteration": itr,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng": _rng_state(device),
                    "history_columns": columns,
                    "history": [[row[c] for c in columns] for row in history],
                    "scores": scores,
                    "best_iteration": best["iteration"],
                    "best_score": best["score"],
                    "best_state": best["state"],
                    "plan_digest": plan_arrays.digest(itr + 1),
                    "model_config": model_cfg.to_dict(),
                    "loss_config": loss_cfg.to_dict(),
                    "train_config": train_cfg.to_dict(),
                },
                checkpoint_path,
            )

        autocast = bool(train_cfg.bf16)
        if autocast and not bf16_is_fast(device):
            logger.warning("bf16 on a CPU without AMX / AVX512-BF16 is slower than float32")
        model.train()
        t0 = time.perf_counter()
        running, running_n = 0.0, 0
        pending: list[tuple[int, torch.Tensor]] = []
        metrics_every = train_cfg.metrics_every or (1 if device.type == "cpu" else 25)
        bar = tqdm(
            range(start, max_iter),
            initial=start,
            total=max_iter,
            disable=not progress,
            desc="train",
            # redirected output (logs, CI) gets a line every 30 s instead of one per update
            mininterval=0.1 if sys.stderr.isatty() else 30.0,
            dynamic_ncols=True,
        )
        for itr in bar:
            videos = plan_arrays.videos[itr]
            idx = batch_snippet_indices(
                bank.lengths[videos],
                plan_arrays.seeds[itr],
                train_cfg.max_seqlen,
                train_cfg.sampling,
                closed_upper=train_cfg.closed_upper,
            )
            if train_cfg.truncate_to_valid_length:
                idx = idx[:, : max(1, bank.valid_length(videos, idx))]
            x = bank.gather(videos, idx)
            y = label_rows[_to_device(videos, device)]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                out = model(x)
            if autocast:
                out = ModelOutputs(*(t.float() for t in out))
            total, terms = co2net_loss(out, y, loss_cfg)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()

            names = [*terms, "total"]
            pending.append(
                (itr, torch.stack([t.detach().float() for t in (*terms.values(), total)]))
            )

            is_point = itr > 0 and itr % train_cfg.interval == 0
            is_final = itr == max_iter - 1
            extra: dict[str, float] = {}
            if train_cfg.selection != "last" and (
                is_point or (is_final and train_cfg.score_final_iteration)
            ):
                score = _score(model, selection_score, itr, device)
                scores.append((itr, score))
                extra["selection_score"] = score
                if score > best["score"]:
                    best = {"iteration": itr, "score": score, "state": _cpu_state(model)}
                    if checkpoint_path is not None:
                        _atomic_save(best["state"], checkpoint_path.with_name(BEST_NAME))
            if is_point or is_final or len(pending) >= metrics_every:
                # One device->host transfer for every buffered iteration's values.
                values = torch.stack([v for _, v in pending]).cpu().tolist()
                for (done, _), row in zip(pending, values, strict=True):
                    metrics = dict(zip(names, row, strict=True))
                    history.append({"iteration": done, **metrics})
                    running += metrics["total"]
                    running_n += 1
                    if on_metrics is not None:
                        on_metrics(done, metrics | extra if done == itr else metrics)
                pending.clear()
                bar.set_postfix(loss=f"{running / running_n:.4f}", refresh=False)
            if is_point or is_final:
                save_checkpoint(itr)
            if is_point:
                running, running_n = 0.0, 0
        bar.close()
        n_run = max_iter - start
        seconds = (time.perf_counter() - t0) / n_run if n_run > 0 else float("nan")

    final_iteration = max_iter - 1
    if train_cfg.selection == "last":
        state, selected, note = _cpu_state(model), final_iteration, "final weights"
    elif best["state"] is None:
        state, selected = _cpu_state(model), final_iteration
        note = "no scoring point reached (max_iter <= interval): final weights"
    else:
        state, selected = best["state"], int(best["iteration"])
        note = (
            f"best {train_cfg.selection} score {best['score']:.6g} at iteration {selected} "
            f"of {len(scores)} scored (higher is better)"
        )
    result_model = model.to("cpu")
    result_model.load_state_dict(state)
    result_model.eval()
    columns = ["iteration", *[c for c in (history[0] if history else {}) if c != "iteration"]]
    return TrainResult(
        model=result_model,
        state_dict=state,
        history=pd.DataFrame(history, columns=columns),
        selected_iteration=selected,
        selection=train_cfg.selection,
        selection_note=note,
        selection_scores=pd.DataFrame(scores, columns=["iteration", "score"]),
        seconds_per_iteration=seconds,
        device=str(device),
    )


def _score(
    model: nn.Module,
    selection_score: Callable[[nn.Module, int], float] | None,
    itr: int,
    device: torch.device,
) -> float:
    """Selection score in eval mode; the torch RNG is forked so scoring cannot change the
    dropout stream of the following iterations (keeps resume and replay exact)."""
    assert selection_score is not None
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        model.eval()
        try:
            score = float(selection_score(model, itr))
        finally:
            model.train()
    return score


def _check_resume(
    ckpt: Mapping[str, Any],
    model_cfg: ModelConfig,
    loss_cfg: LossConfig,
    train_cfg: TrainConfig,
    plan: _Plan,
    path: Path,
) -> None:
    if ckpt.get("format") != _CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: unknown checkpoint format {ckpt.get('format')!r}")
    if ckpt["model_config"] != model_cfg.to_dict():
        raise ValueError(f"{path}: written for model config {ckpt['model_config']}")
    if ckpt["loss_config"] != loss_cfg.to_dict():
        raise ValueError(f"{path}: written for loss config {ckpt['loss_config']}")
    saved = ckpt["train_config"]
    current = train_cfg.to_dict()
    diff = {k: (saved.get(k), current[k]) for k in _RESUME_KEYS if saved.get(k) != current[k]}
    if diff:
        raise ValueError(f"{path}: train config differs from the checkpoint's: {diff}")
    itr = int(ckpt["iteration"])
    if itr >= train_cfg.max_iter:
        raise ValueError(
            f"{path}: checkpoint at iteration {itr} is past max_iter={train_cfg.max_iter}"
        )
    if ckpt["plan_digest"] != plan.digest(itr + 1):
        raise ValueError(f"{path}: the sampling plan differs from the one the checkpoint used")
