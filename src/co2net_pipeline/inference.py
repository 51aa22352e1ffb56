"""Whole-video inference: per-video CAS logits and attentions (spec §5 input).

Every video is forwarded whole (no sampling, no padding): the CCM's temporal mean and the
temporal convolutions would see any padding, so videos of different lengths are never
batched together.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from co2net_pipeline.model.co2net import ModelOutputs

logger = logging.getLogger(__name__)

VideoOutputs = dict[str, np.ndarray]


def _to_numpy(out: ModelOutputs, row: int) -> VideoOutputs:
    return {
        "cas": out.cas[row].float().cpu().numpy(),
        "attention": out.attn[row, :, 0].float().cpu().numpy(),
        "v_atn": out.v_atn[row, :, 0].float().cpu().numpy(),
        "f_atn": out.f_atn[row, :, 0].float().cpu().numpy(),
    }


def _identical(a: VideoOutputs, b: VideoOutputs) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in a)


def run_inference(
    model: nn.Module,
    features: Mapping[str, np.ndarray],
    device: torch.device | str = "cpu",
    batch_by_length: bool = True,
    autocast_bf16: bool = False,
    max_batch_snippets: int = 65_536,
) -> dict[str, dict[str, np.ndarray]]:
    """CAS and attentions of every video, in eval mode without gradients.

    features: video_id -> (T, 2D) snippet features. Returns, per video (in input order),
    "cas": (T, C+1) float32 logits, "attention": (T,) fused attention, "v_atn": (T,) RGB
    attention, "f_atn": (T,) Flow attention.

    batch_by_length: forward videos of exactly equal length together (at most
        `max_batch_snippets` snippets per pass), but only where that is bit-identical to one
        video at a time. Kernels may pick different algorithms for different batch sizes
        (oneDNN on CPU does: ~1e-6 differences), so every batched pass is checked against a
        one-video pass of its first video; at the first difference that pass is redone video
        by video and so is the rest of the run. Results never depend on this switch; it only
        saves time where the device's kernels are batch-invariant.
    autocast_bf16: run the model under bfloat16 autocast (outputs are returned as float32).
    The model's train/eval mode and device are restored afterwards.
    """
    device = torch.device(device)
    was_training = model.training
    original_device = next(model.parameters()).device
    model.eval().to(device)
    d2 = 2 * getattr(getattr(model, "cfg", None), "feature_dim", 0) or None

    def forward(batch: np.ndarray) -> ModelOutputs:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)
        return model(x)

    results: dict[str, VideoOutputs] = {}
    groups: dict[int, list[str]] = defaultdict(list)
    for vid, feat in features.items():
        feat = np.asarray(feat)
        if feat.ndim != 2 or feat.shape[0] < 1 or (d2 is not None and feat.shape[1] != d2):
            raise ValueError(
                f"{vid}: features have shape {feat.shape}, expected (T >= 1, {d2 or '2D'})"
            )
        groups[feat.shape[0]].append(vid)

    batching = batch_by_length
    try:
        # One autocast region for all videos: its cache casts each weight to bf16 once.
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_bf16)
        with torch.inference_mode(), autocast:
            for length, vids in groups.items():  # loop over videos, grouped by length
                per_pass = max(1, max_batch_snippets // length)
                start = 0
                while start < len(vids):
                    chunk = vids[start : start + (per_pass if batching else 1)]
                    start += len(chunk)
                    out = forward(np.stack([features[v] for v in chunk]))
                    batch = {v: _to_numpy(out, i) for i, v in enumerate(chunk)}
                    if len(chunk) > 1:
                        first = _to_numpy(forward(np.asarray(features[chunk[0]])[None]), 0)
                        if not _identical(first, batch[chunk[0]]):
                            logger.info(
                                "batched inference differs from one-video passes on %s; "
                                "running video by video",
                                device,
                            )
                            batching = False
                            batch = {
                                v: _to_numpy(forward(np.asarray(features[v])[None]), 0)
                                for v in chunk
                            }
                    results.update(batch)
    finally:
        model.train(was_training).to(original_device)
    return {vid: results[vid] for vid in features}
