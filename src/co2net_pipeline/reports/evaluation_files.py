"""The evaluation's files: detection and ground-truth readers, the ActivityNet result writer,
sanity warnings on what was read, and `evaluate_files` (what `co2net evaluate` runs).

The metric itself (`co2net_pipeline.method.metric`) works on tables only; everything that knows a
file format, a shipped dataset or a unit lives here.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from co2net_pipeline.data.annotations import (
    DEFAULT_TEST_SUBSET,
    SHIPPED_DATASETS,
    SNIPPETS_PER_SECOND,
    Annotations,
    json_number,
    json_segment,
    load_activitynet_json,
    load_ground_truth_csv,
    load_shipped_annotations,
    seconds_to_snippets,
)
from co2net_pipeline.method.metric import (
    ACTIVITYNET_TIOU,
    DEFAULT_TIOU,
    PREDICTION_COLUMNS,
    THUMOS14_TIOU,
    UNITS,
    DetectionResult,
    check_tiou_thresholds,
    evaluate_detections,
    require_columns,
)


def _finite_column(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: row {row + 2} (video {table['video_id'].iloc[row]}): {column} "
            f"{table[column].iloc[row]!r} is not a finite number"
        )
    return values


def _detection_numbers(entry: Any) -> tuple[float, float, float]:
    """(start, end, score) of one ActivityNet result entry."""
    if not isinstance(entry, dict):
        raise TypeError(f"entry is {entry!r}, not an object")
    start, end = json_segment(entry["segment"])
    return start, end, json_number(entry["score"], "score")


def _predictions_from_json(path: Path) -> pd.DataFrame:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({exc})") from exc
    except RecursionError as exc:  # json's parser recurses once per nesting level
        raise ValueError(f"{path}: not a readable JSON file (nested too deeply)") from exc
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise ValueError(f"{path}: expected an object with a 'results' mapping of videos")
    rows = []
    for vid, entries in results.items():
        if not isinstance(entries, list):
            raise ValueError(f"{path}: video {vid}: expected a list of detections")
        for i, entry in enumerate(entries):
            try:
                start, end, score = _detection_numbers(entry)
                label = entry["label"]
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                # OverflowError: a JSON integer beyond float range (a score of 10**400)
                problem = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
                raise ValueError(
                    f"{path}: video {vid}: detection {i} is malformed ({problem}); "
                    "expected {'label', 'score', 'segment': [start, end]}"
                ) from exc
            if not (math.isfinite(start) and math.isfinite(end) and math.isfinite(score)):
                raise ValueError(
                    f"{path}: video {vid}: detection {i} has a non-finite segment or score"
                )
            if not isinstance(label, str | int) or isinstance(label, bool) or label == "":
                raise ValueError(
                    f"{path}: video {vid}: detection {i} has no usable label ({label!r})"
                )
            rows.append((str(vid), start, end, str(label), score))
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS).astype(
        {"video_id": str, "label": str, "t_start": float, "t_end": float, "score": float}
    )


def load_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """Read detections: CSV `video_id,t_start,t_end,label,score` or an ActivityNet result JSON
    `{"results": {video_id: [{"label", "score", "segment": [start, end]}]}}`.

    Returns video_id, t_start, t_end, label, score. Malformed rows raise ValueError naming the
    file and row. Rows with t_end < t_start are kept (the reference scores them).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: predictions file not found")
    if path.suffix.lower() == ".json":
        return _predictions_from_json(path)
    try:
        table = pd.read_csv(path, dtype={"video_id": str, "label": str}, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc})") from exc
    require_columns(table, PREDICTION_COLUMNS, str(path))
    for column in ("video_id", "label"):
        empty = (table[column].astype(str).str.strip() == "").to_numpy()
        if empty.any():
            row = int(np.flatnonzero(empty)[0])
            raise ValueError(f"{path}: row {row + 2}: {column} is empty")
    out = pd.DataFrame(
        {
            "video_id": table["video_id"].astype(str),
            "t_start": _finite_column(table, "t_start", path),
            "t_end": _finite_column(table, "t_end", path),
            "label": table["label"].astype(str),
            "score": _finite_column(table, "score", path),
        }
    )
    return out


def load_ground_truth(
    source: str, subset: str | None = None, units: str = "snippets"
) -> tuple[pd.DataFrame, list[float], Annotations]:
    """Ground truth for the evaluator.

    source: `thumos14` / `activitynet12` (shipped annotations; default subsets test /
    validation), a CSV `video_id,t_start,t_end,label` in seconds (subset None = all), or an
    ActivityNet JSON (subset None = all). units: `snippets` converts seconds with
    round(t·25/16), half to even (spec §6); `seconds` keeps them.
    Returns (GT table video_id, t_start, t_end, label; default tIoU list; the annotations of the
    subset).
    """
    if units not in UNITS:
        raise ValueError(f"units must be one of {list(UNITS)}, got {units!r}")
    if source in SHIPPED_DATASETS:
        annotations = load_shipped_annotations(source)
        subset = subset or DEFAULT_TEST_SUBSET[source]
        default_tiou = DEFAULT_TIOU[source]
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(
                f"ground truth {source!r}: neither a shipped dataset ({', '.join(sorted(SHIPPED_DATASETS))}) "
                "nor an existing CSV/JSON file"
            )
        if path.suffix.lower() == ".json":
            annotations = load_activitynet_json(path)
            default_tiou = ACTIVITYNET_TIOU
        else:
            annotations = load_ground_truth_csv(path)
            default_tiou = THUMOS14_TIOU
            if subset == "all":
                subset = None
    annotations = annotations.subset(subset)
    segments = annotations.segments
    if units == "snippets":
        start = seconds_to_snippets(segments["t_start_s"]).astype(np.float64)
        end = seconds_to_snippets(segments["t_end_s"]).astype(np.float64)
    else:
        start = segments["t_start_s"].to_numpy(dtype=np.float64)
        end = segments["t_end_s"].to_numpy(dtype=np.float64)
    gt = pd.DataFrame(
        {
            "video_id": segments["video_id"].astype(str).to_numpy(),
            "t_start": start,
            "t_end": end,
            "label": segments["label"].astype(str).to_numpy(),
        }
    )
    if gt.empty:
        raise ValueError(f"ground truth {source!r} (subset {subset!r}) has no segment")
    return gt, list(default_tiou), annotations


def prediction_warnings(
    predictions: pd.DataFrame, known_videos: Sequence[str], classes: Sequence[str]
) -> dict[str, int]:
    """Counts of suspicious predictions: videos outside the ground truth (false positives),
    labels outside the evaluated classes (ignored), reversed segments t_end < t_start (kept)."""
    videos = set(map(str, known_videos))
    labels = set(map(str, classes))
    return {
        "unknown_videos": int((~predictions["video_id"].astype(str).isin(videos)).sum()),
        "unknown_classes": int((~predictions["label"].astype(str).isin(labels)).sum()),
        "reversed_segments": int((predictions["t_end"] < predictions["t_start"]).sum()),
    }


# Sanity warnings: inputs that give an answer, but probably not the one the user wanted.
WARNING_MESSAGES = {
    "no_predictions": "the predictions hold no detection: every AP is 0",
    "unknown_videos": "prediction(s) for videos outside the ground truth (scored as false positives)",
    "unknown_classes": "prediction(s) with a label outside the evaluated classes (ignored)",
    "reversed_segments": "prediction(s) with t_end < t_start (kept, as the reference does)",
    "negative_times": "prediction(s) with a negative start or end time",
    "past_duration": "prediction(s) end past their video's duration",
    "reversed_ground_truth": "ground-truth segment(s) with t_end < t_start",
    "negative_ground_truth": "ground-truth segment(s) with a negative start or end time",
}
# A detection may end up to one unit (snippet or second) past the video: rounding.
_DURATION_SLACK = 1.0


def input_warnings(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    annotations: Annotations,
    classes: Sequence[str],
    units: str = "snippets",
    durations_known: bool = True,
) -> dict[str, int]:
    """Counts of suspicious rows (keys of `WARNING_MESSAGES`): `prediction_warnings`, negative
    times, reversed or negative ground truth and, when the annotations carry real durations
    (`durations_known`), predictions ending past their video's duration in `units`, the tell of
    snippet-unit predictions scored with `units="seconds"`.

    predictions, ground_truth: the evaluator's tables, in `units`."""
    counts = {"no_predictions": int(predictions.empty)}
    counts.update(prediction_warnings(predictions, annotations.videos["video_id"], classes))
    p_start, p_end = predictions["t_start"], predictions["t_end"]
    g_start, g_end = ground_truth["t_start"], ground_truth["t_end"]
    counts["negative_times"] = int(((p_start < 0) | (p_end < 0)).sum())
    counts["reversed_ground_truth"] = int((g_end < g_start).sum())
    counts["negative_ground_truth"] = int(((g_start < 0) | (g_end < 0)).sum())
    if durations_known:
        videos = annotations.videos
        duration = videos["duration_s"].to_numpy(dtype=np.float64)
        if units == "snippets":
            duration = duration * SNIPPETS_PER_SECOND
        limit = pd.Series(duration, index=videos["video_id"].astype(str).to_numpy())
        # a few THUMOS14 segments end past the video; a detection may match them
        gt_end = ground_truth.groupby(ground_truth["video_id"].astype(str))["t_end"].max()
        limit = limit.combine(gt_end, max, fill_value=0.0)
        limit = limit[limit > 0]
        # float even when there is no prediction (an empty map keeps the string dtype)
        end_limit = predictions["video_id"].astype(str).map(limit).astype(np.float64)
        counts["past_duration"] = int((p_end > end_limit + _DURATION_SLACK).sum())
    return counts


def warning_lines(counts: dict[str, int], units: str = "snippets") -> list[str]:
    """One line per non-zero count of `input_warnings`, with a hint where the cause is likely."""
    lines = []
    for key, count in counts.items():
        if not count:
            continue
        line = WARNING_MESSAGES[key] if key == "no_predictions" else None
        line = line or f"{count} {WARNING_MESSAGES.get(key, key)}"
        if key == "past_duration" and units == "seconds":
            line += "; are the predictions in snippets? (then leave out --units seconds)"
        elif key == "past_duration":
            line += f" ({units})"
        lines.append(line)
    return lines


@dataclass
class FileEvaluation:
    """What `evaluate_files` found: the scores, one line per sanity warning, and the metrics
    document (JSON-ready: ground_truth, subset, units, tiou, map, average, per_class_ap, counts,
    warnings)."""

    result: DetectionResult
    warnings: list[str]
    document: dict[str, Any]


def evaluate_files(
    predictions: str | os.PathLike,
    ground_truth: str = "thumos14",
    subset: str | None = None,
    units: str = "snippets",
    tiou: Sequence[float] | None = None,
) -> FileEvaluation:
    """Score a detection file (`load_predictions`) against `load_ground_truth(ground_truth,
    subset, units)`; tiou None: the dataset's default list, otherwise `check_tiou_thresholds`.
    Bad input raises ValueError naming the file, row or parameter."""
    thresholds = None if tiou is None else check_tiou_thresholds(tiou)
    table = load_predictions(predictions)
    gt, default_tiou, annotations = load_ground_truth(ground_truth, subset, units)
    present = set(gt["label"])
    classes = [c for c in annotations.classlist if c in present]
    classes += sorted(present - set(classes))
    result = evaluate_detections(table, gt, thresholds or default_tiou, classes)
    # A user's ground-truth CSV has no durations (its "duration" is the last segment's end).
    durations_known = ground_truth in SHIPPED_DATASETS or str(ground_truth).lower().endswith(
        ".json"
    )
    result.warnings = input_warnings(table, gt, annotations, classes, units, durations_known)
    document = {
        "ground_truth": ground_truth,
        "subset": _evaluated_subset(ground_truth, subset),
        "units": units,
        "tiou": result.tiou,
        **result.to_dict(),
        "warnings": result.warnings,
    }
    return FileEvaluation(result, warning_lines(result.warnings, units), document)


def _evaluated_subset(ground_truth: str, subset: str | None) -> str | None:
    """The subset actually evaluated (the shipped datasets default to their test subset)."""
    if subset is None and ground_truth in DEFAULT_TEST_SUBSET:
        return DEFAULT_TEST_SUBSET[ground_truth]
    return subset


def detections_to_activitynet_json(
    detections: pd.DataFrame, version: str = "co2net"
) -> dict[str, Any]:
    """Detections (video_id, label, score, t_start_s, t_end_s) → ActivityNet result format
    `{"version", "results": {video_id: [{"label", "score", "segment": [s, e]}]}, "external_data"}`
    in seconds."""
    require_columns(
        detections, ["video_id", "label", "score", "t_start_s", "t_end_s"], "detections"
    )
    results: dict[str, list[dict[str, Any]]] = {}
    vids = detections["video_id"].astype(str).to_numpy()
    labels = detections["label"].astype(str).to_numpy()
    scores = detections["score"].to_numpy(dtype=np.float64)
    starts = detections["t_start_s"].to_numpy(dtype=np.float64)
    ends = detections["t_end_s"].to_numpy(dtype=np.float64)
    for vid, label, score, start, end in zip(vids, labels, scores, starts, ends, strict=True):
        results.setdefault(vid, []).append(
            {"label": label, "score": float(score), "segment": [float(start), float(end)]}
        )
    return {"version": version, "results": results, "external_data": {}}
