"""New videos' features as one table (pandas DataFrames, not video frames): the input of the
logged detector, `mlflow.pyfunc.load_model(uri).predict(frame)`, and of `training_ml`.

One row per snippet, columns `video_id`, `snippet` (0..T-1 within each video) and the 2D feature
channels `rgb_0 .. rgb_{D-1}, flow_0 .. flow_{D-1}` (the W-TALC JOINT layout: RGB first). The
detector's output is the detections DataFrame of the proposals pipeline (video_id, label,
class_idx, score, t_start, t_end in snippets, t_start_s, t_end_s in seconds).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

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
    problem = _channel_problem([str(c) for c in channels]) or _dtype_problem(frame, channels)
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


def _dtype_problem(frame: pd.DataFrame, channels: list) -> str | None:
    """The first column whose dtype cannot hold its values, in a few words (None: video_id
    strings or integers, snippet integers, channels numbers)."""
    types = pd.api.types
    checks = {
        "video_id": (
            lambda c: types.is_string_dtype(c) or types.is_integer_dtype(c),
            "strings",
        ),
        "snippet": (_integral, "integers"),
    }
    number = (lambda c: types.is_numeric_dtype(c) and not types.is_bool_dtype(c), "numbers")
    for name in [*INDEX_COLUMNS, *channels]:
        accepts, expected = checks.get(name, number)
        column = frame[name]
        if accepts(column):
            continue
        first = column.iloc[0] if len(column) else None
        first = first.item() if isinstance(first, np.generic) else first  # True, not np.True_
        example = f" (e.g. {first!r})" if len(column) else ""
        return f"column {name} has dtype {column.dtype}{example}, expected {expected}"
    return None


def _integral(column: pd.Series) -> bool:
    """Integers, or floats that are all whole numbers (a frame read back from JSON or CSV)."""
    if pd.api.types.is_bool_dtype(column):
        return False
    if pd.api.types.is_integer_dtype(column):
        return True
    if not pd.api.types.is_float_dtype(column):
        return False
    values = column.to_numpy(dtype=np.float64)
    return bool(np.all(np.isfinite(values) & (values == np.round(values))))


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
