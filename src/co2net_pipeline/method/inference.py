"""Whole-video inference: per-video CAS logits and attentions (spec §5 input).

Every video is forwarded whole (no sampling, no cropping). Videos of different lengths share a
forward pass only through CO2Net's padded-batch mode (`forward(x, lengths)`), which keeps the
CCM's temporal means and every temporal convolution blind to the padding.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import torch
from torch import nn

from co2net_pipeline.common.config import dataclass_from_dict
from co2net_pipeline.method.model.co2net import ModelOutputs
from co2net_pipeline.method.proposals import ProposalParams, localize_videos

logger = logging.getLogger(__name__)

VideoOutputs = dict[str, np.ndarray]
Batching = Literal["padded", "equal_length", "none"]
BATCHING: tuple[str, ...] = get_args(Batching)


@dataclass
class InferenceConfig:
    """How whole videos are forwarded: the single list of the `inference` parameters, their
    types and defaults (`params.schema` derives the checked group; conf/base prints them).

    device: "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:1", ...
    batching: "padded" (videos of similar length share a padded pass, equal to one video at a
        time up to float rounding), "equal_length" (bit-identical to one video at a time) or
        "none" (one video per pass, the reference's test loop); see `run_inference`.
    bf16: bfloat16 autocast of the forward passes.
    cpu_threads: torch intra-op threads during inference (None = torch's default); the small
        synthetic model is fastest on one.
    """

    device: str = "auto"
    batching: Batching = "padded"
    bf16: bool = False
    cpu_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.batching not in BATCHING:
            raise ValueError(
                f"InferenceConfig.batching={self.batching!r}: expected one of {BATCHING}"
            )
        if self.cpu_threads is not None and int(self.cpu_threads) < 1:
            raise ValueError(f"InferenceConfig.cpu_threads must be >= 1, got {self.cpu_threads}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> InferenceConfig:
        """Build from a dictionary of `InferenceConfig` fields; unknown keys are an error."""
        return dataclass_from_dict(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _to_numpy(out: ModelOutputs, row: int, length: int) -> VideoOutputs:
    """One video's rows of host-side outputs."""
    return {
        "cas": out.cas[row, :length].numpy(),
        "attention": out.attn[row, :length, 0].numpy(),
        "v_atn": out.v_atn[row, :length, 0].numpy(),
        "f_atn": out.f_atn[row, :length, 0].numpy(),
    }


def _empty_outputs(model: nn.Module) -> VideoOutputs:
    """The outputs of a video with no snippets: cas (0, C+1), attentions (0,)."""
    columns = getattr(getattr(model, "cfg", None), "n_classes", 0) + 1
    empty = np.zeros(0, np.float32)
    cas = np.zeros((0, columns), np.float32)
    return {"cas": cas, "attention": empty, "v_atn": empty.copy(), "f_atn": empty.copy()}


def _identical(a: VideoOutputs, b: VideoOutputs) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in a)


def padded_batches(
    lengths: Mapping[str, int], max_batch_snippets: int, max_padding: float = 0.1, multiple: int = 8
) -> list[tuple[list[str], int]]:
    """(videos, padded length) of each padded pass: videos sorted by length, each batch padded
    to its longest video rounded up to `multiple` (even sizes keep bf16 kernels on their fast
    path), at most `max_batch_snippets` padded snippets per batch (a longer video goes alone)
    and at most `max_padding` of a batch's snippets padding (before the rounding)."""

    def padded(vid: str) -> int:
        return -(-lengths[vid] // multiple) * multiple

    batches: list[list[str]] = []
    current: list[str] = []
    for vid in sorted(lengths, key=lambda v: (lengths[v], v)):
        candidate = current + [vid]
        real = sum(lengths[v] for v in candidate)
        waste = 1 - real / (lengths[vid] * len(candidate))
        if current and (padded(vid) * len(candidate) > max_batch_snippets or waste > max_padding):
            batches.append(current)
            candidate = [vid]
        current = candidate
    if current:
        batches.append(current)
    return [(batch, padded(batch[-1])) for batch in batches]


def run_inference(
    model: nn.Module,
    features: Mapping[str, np.ndarray],
    device: torch.device | str = "cpu",
    batching: str = "padded",
    autocast_bf16: bool = False,
    max_batch_snippets: int | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """CAS and attentions of every video, in eval mode without gradients.

    features: video_id -> (T, 2D) snippet features. Returns, per video (in input order),
    "cas": (T, C+1) float32 logits, "attention": (T,) fused attention, "v_atn": (T,) RGB
    attention, "f_atn": (T,) Flow attention.

    batching: how videos share forward passes (at most `max_batch_snippets` snippets per pass):
        "padded": videos of similar length in one padded pass (`padded_batches`, CO2Net's
            `forward(x, lengths)`); equal to one-video passes up to floating-point rounding
            (kernels pick other algorithms for other shapes: ~1e-6 on CPU). The fastest.
        "equal_length": only videos of exactly equal length together, and only where that is
            bit-identical to one video at a time: every batched pass is checked against a
            one-video pass of its first video; at the first difference that pass is redone
            video by video and so is the rest of the run.
        "none": one video per pass (the reference's test loop).
    max_batch_snippets: None = 2048 on CPU (small passes stay in cache: 1.45x faster than 16k
        on the full-size model, 2 cores), 65536 on GPUs.
    autocast_bf16: run the model under bfloat16 autocast (outputs are returned as float32).
    The model's train/eval mode and device are restored afterwards.
    """
    if batching not in BATCHING:
        raise ValueError(f"run_inference batching={batching!r}: expected one of {BATCHING}")
    device = torch.device(device)
    if max_batch_snippets is None:
        max_batch_snippets = 2048 if device.type == "cpu" else 65_536
    was_training = model.training
    original_device = next(model.parameters()).device
    model.eval().to(device)
    d2 = 2 * getattr(getattr(model, "cfg", None), "feature_dim", 0) or None

    lengths: dict[str, int] = {}
    # A store view (`FeatureStore.view`) knows shapes from its index: no read just for them.
    shape_of = getattr(features, "shape_of", None)
    results: dict[str, VideoOutputs] = {}
    for vid in features:
        shape = tuple(shape_of(vid)) if shape_of is not None else np.shape(features[vid])
        if len(shape) == 2 and shape[0] == 0:  # no snippets: empty outputs, no forward pass
            results[vid] = _empty_outputs(model)
            continue
        if len(shape) != 2 or (d2 is not None and shape[1] != d2):
            raise ValueError(f"{vid}: features have shape {shape}, expected (T, {d2 or '2D'})")
        lengths[vid] = int(shape[0])

    def forward(chunk: list[str], padded_to: int | None = None) -> dict[str, VideoOutputs]:
        if padded_to is None:
            x = np.stack([np.asarray(features[v], dtype=np.float32) for v in chunk])
            out = model(torch.from_numpy(x).to(device))
        else:
            x = np.zeros((len(chunk), padded_to, d2 or np.shape(features[chunk[0]])[1]), np.float32)
            for row, v in enumerate(chunk):
                x[row, : lengths[v]] = features[v]
            n = torch.tensor([lengths[v] for v in chunk])
            out = model(torch.from_numpy(x).to(device), n.to(device))
        out = ModelOutputs(*(t.float().cpu() for t in out))  # one transfer per pass
        return {v: _to_numpy(out, row, lengths[v]) for row, v in enumerate(chunk)}

    try:
        # One autocast region for all videos: its cache casts each weight to bf16 once.
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_bf16)
        with torch.inference_mode(), autocast:
            if batching == "padded":
                for chunk, padded_to in padded_batches(lengths, max_batch_snippets):
                    results.update(forward(chunk, padded_to))
            else:
                _equal_length_passes(
                    forward, lengths, batching, max_batch_snippets, results, device
                )
    finally:
        model.train(was_training).to(original_device)
    return {vid: results[vid] for vid in features}


def _equal_length_passes(forward, lengths, batching, max_batch_snippets, results, device) -> None:
    groups: dict[int, list[str]] = defaultdict(list)
    for vid, length in lengths.items():
        groups[length].append(vid)
    exact = batching == "equal_length"
    for length, vids in groups.items():  # loop over videos, grouped by length
        per_pass = max(1, max_batch_snippets // length)
        start = 0
        while start < len(vids):
            chunk = vids[start : start + (per_pass if exact else 1)]
            start += len(chunk)
            batch = forward(chunk)
            if len(chunk) > 1 and not _identical(forward(chunk[:1])[chunk[0]], batch[chunk[0]]):
                logger.info(
                    "batched inference differs from one-video passes on %s; running video by video",
                    device,
                )
                exact = False
                batch = {v: forward([v])[v] for v in chunk}
            results.update(batch)


def load_model(trained_model: Mapping[str, Any]) -> nn.Module:
    """The CO2-Net of a `trained_model` artifact ({"model_config", "state_dict", ...}), in eval mode."""
    from co2net_pipeline.method.model import ModelConfig, build_model

    config = dict(trained_model["model_config"])
    if "pool_seqlen" in config:  # a model trained before the kernel followed max_seqlen
        config["max_seqlen"] = config.pop("pool_seqlen")
    model = build_model(ModelConfig.from_dict(config))
    model.load_state_dict(trained_model["state_dict"])
    return model.eval()


def infer_videos(
    trained_model: Mapping[str, Any],
    features: Mapping[str, np.ndarray],
    settings: InferenceConfig | None = None,
) -> dict[str, VideoOutputs]:
    """`run_inference` of a `trained_model` artifact with the `inference` settings (default
    `InferenceConfig()`); features: video_id -> (T, 2D)."""
    from co2net_pipeline.method.training import (
        select_device,  # training imports the model; no cycle
    )

    settings = settings or InferenceConfig()
    model = load_model(trained_model)
    device = select_device(settings.device)
    previous = torch.get_num_threads()
    if settings.cpu_threads:
        # small models: extra OpenMP threads stall when other processes share the cores
        torch.set_num_threads(settings.cpu_threads)
    try:
        return run_inference(
            model.to(device),
            features,
            device,
            batching=settings.batching,
            autocast_bf16=settings.bf16,
        )
    finally:
        torch.set_num_threads(previous)


def detect_videos(
    trained_model: Mapping[str, Any],
    features: Mapping[str, np.ndarray],
    settings: InferenceConfig,
    proposals: ProposalParams,
) -> pd.DataFrame:
    """Detections of new videos (features: video_id -> (T, 2D)): `infer_videos`, then the
    proposals of `proposals.localize_videos` (no ambiguous intervals are known for them)."""
    outputs = infer_videos(trained_model, features, settings)
    cas = {vid: (o["cas"], o["attention"]) for vid, o in outputs.items()}
    return localize_videos(cas, list(trained_model["classlist"]), proposals)
