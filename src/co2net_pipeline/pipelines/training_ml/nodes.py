"""The pyfunc model's input format (new videos' features as a DataFrame) and its two inference nodes.

Input of `mlflow.pyfunc.load_model(uri).predict(frame)`: one row per snippet, columns
`video_id`, `snippet` (0..T-1 within each video) and the 2D feature channels `rgb_0 ..
rgb_{D-1}, flow_0 .. flow_{D-1}` (the W-TALC JOINT layout: RGB first). Output: the detections
DataFrame of the proposals pipeline (video_id, label, class_idx, score, t_start, t_end in
snippets, t_start_s, t_end_s in seconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from co2net_pipeline.pipelines.inference.nodes import infer_test_set
from co2net_pipeline.pipelines.proposals.nodes import generate_proposals

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
    if not channels or len(channels) % 2 or channels != feature_columns(len(channels) // 2):
        raise ValueError(
            "new video features: expected the channel columns rgb_0..rgb_{D-1}, flow_0..flow_{D-1} "
            f"in that order, got {channels[:3]}...{channels[-2:]} ({len(channels)} columns)"
        )
    out: dict[str, np.ndarray] = {}
    for vid, rows in frame.groupby("video_id", sort=False):  # loop over videos
        rows = rows.sort_values("snippet")
        if not np.array_equal(rows["snippet"].to_numpy(), np.arange(len(rows))):
            raise ValueError(
                f"{vid}: snippet column must be 0..{len(rows) - 1} without gaps or repeats"
            )
        out[str(vid)] = rows[channels].to_numpy(dtype=np.float32)
    return out


class _FeatureDict(dict):
    """In-memory stand-in for a `FeatureStore` (what the inference node reads from)."""

    def load_all(self, video_ids: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        return {v: self[v] for v in (self if video_ids is None else video_ids)}


def export_new_video_example(feature_store, data_split: dict, params: dict) -> pd.DataFrame:
    """The `n_example_videos` shortest test videos in the input format: the signature sample of
    the logged model and an example of what `predict` takes."""
    n = int(params.get("n_example_videos", 2))
    test = sorted(data_split["test"], key=lambda v: (feature_store.lengths[v], v))[:n]
    if not test:
        raise ValueError("export_new_video_example: the test split is empty")
    return features_to_frame(feature_store.load_all(test))


def infer_new_videos(new_video_features: pd.DataFrame, trained_model: dict, params: dict) -> dict:
    """Per new video: `cas` (T, C+1) logits and the attentions, by the inference node."""
    features = _FeatureDict(frame_to_features(new_video_features))
    return infer_test_set(trained_model, features, {"test": list(features)}, params)


def detect_new_videos(new_video_cas: dict, classlist: list[str], params: dict) -> pd.DataFrame:
    """Detections of the new videos, by the proposals node (no ambiguous intervals are known)."""
    no_ambiguous = pd.DataFrame(
        {
            "video_id": pd.Series(dtype=str),
            "t_start_s": pd.Series(dtype=float),
            "t_end_s": pd.Series(dtype=float),
        }
    )
    detections, _ = generate_proposals(new_video_cas, classlist, no_ambiguous, params)
    return detections
