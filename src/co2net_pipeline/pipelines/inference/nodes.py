"""Whole-video inference over the test subset, stored so proposals can be re-tuned without the model."""

from __future__ import annotations

from co2net_pipeline.method.inference import VideoOutputs, infer_videos
from co2net_pipeline.params.schema import parse_config


def infer_test_set(
    trained_model: dict, feature_store, data_split: dict, params: dict
) -> dict[str, VideoOutputs]:
    """Per test video: `cas` (T, C+1) logits, `attention`, `v_atn`, `f_atn` (T,)."""
    settings = parse_config("inference", params)
    return infer_videos(trained_model, feature_store.view(data_split["test"]), settings)
