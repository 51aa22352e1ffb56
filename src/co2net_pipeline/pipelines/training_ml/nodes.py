"""The pyfunc model's example input and its two inference nodes (new video features →
detections). The input format (one row per snippet) is `co2net_pipeline.data.frames`'.
"""

from __future__ import annotations

import pandas as pd

from co2net_pipeline.data.frames import features_to_frame, frame_to_features
from co2net_pipeline.method.inference import VideoOutputs, infer_videos
from co2net_pipeline.method.proposals import localize_videos
from co2net_pipeline.params.schema import parse_config, parse_group


def export_new_video_example(feature_store, data_split: dict, params: dict) -> pd.DataFrame:
    """The `n_example_videos` shortest test videos in the input format: the signature sample of
    the logged model and an example of what `predict` takes."""
    n = parse_group("training_ml", params).n_example_videos
    test = sorted(data_split["test"], key=lambda v: (feature_store.lengths[v], v))[:n]
    if not test:
        raise ValueError("export_new_video_example: the test split is empty")
    return features_to_frame(feature_store.load_all(test))


def infer_new_videos(
    new_video_features: pd.DataFrame, trained_model: dict, params: dict
) -> dict[str, VideoOutputs]:
    """Per new video: `cas` (T, C+1) logits and the attentions, as the inference node does."""
    settings = parse_config("inference", params)
    return infer_videos(trained_model, frame_to_features(new_video_features), settings)


def detect_new_videos(new_video_cas: dict, classlist: list[str], params: dict) -> pd.DataFrame:
    """Detections of the new videos, as the proposals node finds them (no ambiguous intervals
    are known for new videos)."""
    outputs = {vid: (arrays["cas"], arrays["attention"]) for vid, arrays in new_video_cas.items()}
    return localize_videos(outputs, classlist, parse_config("proposals", params))
