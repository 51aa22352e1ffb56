"""Whole-video inference: per-video CAS logits and attentions (spec §5 input).

Every video is forwarded whole (no sampling, no cropping). Videos of different lengths share a
forward pass only through CO2Net's padded-batch mode (`forward(x, lengths)`), which keeps the
CCM's temporal means and every temporal convolution blind to the padding.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from co2net_pipeline.method.model.co2net import ModelOutputs

logger = logging.getLogger(__name__)

VideoOutputs = dict[str, np.ndarray]
BATCHING = ("padded", "equal_length", "none")


def _to_numpy(out: ModelOutputs, row: int, length: int) -> VideoOutputs:
    """One video's rows of host-side outputs."""
    return {
        "cas": out.cas[row, :length].numpy(),
        "attention": out.attn[row, :length, 0].numpy(),
        "v_atn": out.v_atn[row, :length, 0].numpy(),
        "f_atn": out.f_atn[row, :length, 0].numpy(),
    }


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
    for vid in features:
        shape = tuple(shape_of(vid)) if shape_of is not None else np.shape(features[vid])
        if len(shape) != 2 or shape[0] < 1 or (d2 is not None and shape[1] != d2):
            raise ValueError(f"{vid}: features have shape {shape}, expected (T >= 1, {d2 or '2D'})")
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

    results: dict[str, VideoOutputs] = {}
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

    model = build_model(ModelConfig.from_dict(trained_model["model_config"]))
    model.load_state_dict(trained_model["state_dict"])
    return model.eval()


def infer_videos(
    trained_model: Mapping[str, Any],
    features: Mapping[str, np.ndarray],
    params: Mapping[str, Any],
) -> dict[str, VideoOutputs]:
    """`run_inference` of a `trained_model` artifact with the `inference` parameters
    (`device`, `batching`, `bf16`, `cpu_threads`); features: video_id -> (T, 2D)."""
    from co2net_pipeline.method.training import (
        select_device,  # training imports the model; no cycle
    )
    from co2net_pipeline.params.schema import parse_group

    settings = parse_group("inference", params)
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


# --------------------------------------------------------------------------------------------
# New videos: the logged detector's input table
#
# Input of `mlflow.pyfunc.load_model(uri).predict(frame)`: one row per snippet, columns
# `video_id`, `snippet` (0..T-1 within each video) and the 2D feature channels `rgb_0 ..
# rgb_{D-1}, flow_0 .. flow_{D-1}` (the W-TALC JOINT layout: RGB first). Output: the detections
# DataFrame of the proposals pipeline (video_id, label, class_idx, score, t_start, t_end in
# snippets, t_start_s, t_end_s in seconds).

INDEX_COLUMNS = ["video_id", "snippet"]


def feature_columns(feature_dim: int) -> list[str]:
    """The 2D channel columns: rgb_0 .. rgb_{D-1}, flow_0 .. flow_{D-1}."""
    return [f"rgb_{i}" for i in range(feature_dim)] + [f"flow_{i}" for i in range(feature_dim)]


def features_to_frame(features: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """{video_id: (T, 2D) features} → the model's input DataFrame (one row per snippet).

    Channels are float64: the logged signature is inferred from this frame, and MLflow's schema
    check accepts float32 input for a float64 column but not the reverse.
    """
    widths = {np.asarray(f).shape[1] for f in features.values()}
    if len(widths) != 1 or next(iter(widths)) % 2:
        raise ValueError(
            f"features must all have the same even number of columns (2D), got {sorted(widths)}"
        )
    columns = feature_columns(widths.pop() // 2)
    parts = []
    for vid, feat in features.items():  # loop over videos
        feat = np.asarray(feat, dtype=np.float64)
        part = pd.DataFrame(feat, columns=columns)
        part.insert(0, "snippet", np.arange(len(feat), dtype=np.int64))
        part.insert(0, "video_id", str(vid))
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def frame_to_features(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The model's input DataFrame → {video_id: float32 (T, 2D)}, videos in order of appearance."""
    missing = [c for c in INDEX_COLUMNS if c not in frame.columns]
    channels = [c for c in frame.columns if c not in INDEX_COLUMNS]
    if missing:
        raise ValueError(f"new video features lack the columns {missing}")
    problem = _channel_problem([str(c) for c in channels])
    if problem:
        raise ValueError(f"new video features: {problem}")
    out: dict[str, np.ndarray] = {}
    for vid, rows in frame.groupby("video_id", sort=False):  # loop over videos
        rows = rows.sort_values("snippet")
        if not np.array_equal(rows["snippet"].to_numpy(), np.arange(len(rows))):
            raise ValueError(
                f"{vid}: snippet column must be 0..{len(rows) - 1} without gaps or repeats"
            )
        values = rows[channels].to_numpy(dtype=np.float32)
        bad = ~np.isfinite(values)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            kind = "NaN" if np.isnan(values[row, col]) else "inf"
            raise ValueError(
                f"new video features: video {vid}: {kind} in column {channels[col]} at snippet "
                f"{row} ({int(bad.any(axis=1).sum())} snippet(s) affected)"
            )
        out[str(vid)] = values
    return out


def _channel_problem(channels: list[str]) -> str | None:
    """What is wrong with the channel columns (None: rgb_0..rgb_{D-1}, flow_0..flow_{D-1} in
    order), in a few words: the missing and unexpected names, at most 5 of each."""
    indices = [int(m.group(2)) for c in channels if (m := re.fullmatch(r"(rgb|flow)_(\d+)", c))]
    dim = max(max(indices, default=-1) + 1, len(channels) // 2)
    expected = feature_columns(dim)
    if channels == expected and dim > 0:
        return None

    def some(names: list[str]) -> str:
        shown = ", ".join(names[:5])
        return shown + (f", ... ({len(names)} in all)" if len(names) > 5 else "")

    present = set(channels)
    absent = [c for c in expected if c not in present]
    extra = [c for c in channels if c not in set(expected)]
    parts = [f"missing columns {some(absent)}"] if absent else []
    parts += [f"unexpected columns {some(extra)}"] if extra else []
    if not parts:
        parts = ["channel columns out of order"] if dim else ["no channel columns"]
    return "; ".join(parts) + " (expected video_id, snippet, rgb_0..rgb_{D-1}, flow_0..flow_{D-1})"


def detect_videos(
    trained_model: Mapping[str, Any],
    features: Mapping[str, np.ndarray],
    inference_params: Mapping[str, Any],
    proposal_params: Mapping[str, Any],
) -> pd.DataFrame:
    """Detections of new videos (features: video_id -> (T, 2D)): `infer_videos`, then the
    proposals of `localization.localize_videos` (no ambiguous intervals are known for them)."""
    from co2net_pipeline.method.proposals import ProposalParams, localize_videos

    outputs = infer_videos(trained_model, features, inference_params)
    cas = {vid: (o["cas"], o["attention"]) for vid, o in outputs.items()}
    return localize_videos(
        cas, list(trained_model["classlist"]), ProposalParams.from_dict(proposal_params)
    )
