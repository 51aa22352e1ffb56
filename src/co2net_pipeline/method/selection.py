"""Scoring a model while it trains: the localise → evaluate chain in one place.

Used for model selection (`training.selection`: held-out weak-label mAP or the test set) and
for the test curve (`evaluation.test_curve_every`), the reference's protocol of scoring the
test set every 200 iterations. The same functions back the proposal and evaluation nodes'
metric names, so a curve point and a final evaluation are directly comparable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import average_precision_score
from torch import nn

from co2net_pipeline.method.inference import run_inference
from co2net_pipeline.method.metric import DetectionResult, evaluate_detections
from co2net_pipeline.method.proposals import ProposalParams, localize_videos, video_scores


def detection_metric_values(result: DetectionResult) -> dict[str, float]:
    """MLflow metric names of a detection result: `map_<tIoU>` and `avg_<first>-<last>`
    (fractions), the names `detection_metrics.*`, `test_curve.*` and `best_on_test.*` share."""
    values = {f"map_{t:g}": float(v) for t, v in result.map.items()}
    values.update({f"avg_{k.replace(':', '-')}": float(v) for k, v in result.average.items()})
    return values


def heldout_classification_map(
    model: nn.Module,
    features: Mapping[str, np.ndarray],
    labels: np.ndarray,
    device: torch.device | str,
    topk_divisor: int,
) -> float:
    """Weak-label score: mean over the classes present of the AP of video-level scores.

    features: video_id -> (T, 2D); labels: (N, C) multi-hot in the same order. Needs no
    temporal labels, so it can select a model without touching the test set.
    """
    outputs = run_inference(model, features, device)
    scores = np.stack(
        [video_scores(o["cas"], o["attention"], topk_divisor) for o in outputs.values()]
    )
    present = np.flatnonzero(labels.sum(axis=0) > 0)
    return float(np.mean([average_precision_score(labels[:, c], scores[:, c]) for c in present]))


@dataclass
class DetectionScorer:
    """Scores a model on a fixed set of videos with ground truth (e.g. the test subset).

    features: video_id -> (T, 2D) snippet features; classlist: C names; ground_truth: the
    evaluator's table (video_id, t_start, t_end, label in snippets); ambiguous: intervals for
    the THUMOS14 filter (used when `proposals.ambiguous_filter`); tiou: thresholds.
    """

    features: Mapping[str, np.ndarray]
    classlist: Sequence[str]
    proposals: ProposalParams
    ground_truth: pd.DataFrame
    tiou: Sequence[float]
    ambiguous: pd.DataFrame | None = None
    device: torch.device | str = "cpu"

    def __call__(self, model: nn.Module) -> DetectionResult:
        """Inference → proposals → mAP of `model` (in whatever mode the caller set)."""
        outputs = run_inference(model, self.features, self.device)
        detections = localize_videos(
            {v: (o["cas"], o["attention"]) for v, o in outputs.items()},
            list(self.classlist),
            self.proposals,
            self.ambiguous if self.proposals.ambiguous_filter else None,
        )
        return evaluate_detections(
            detections[["video_id", "t_start", "t_end", "label", "score"]],
            self.ground_truth,
            list(self.tiou),
        )


def best_on_test(curve: pd.DataFrame, average_key: str) -> dict[str, float]:
    """The test-curve row with the highest `avg_<average_key>` (first one on ties, as the
    reference's strict `>`): its metrics plus `iteration`. Empty when there is no curve.

    curve: one row per scored iteration, columns `iteration` and `detection_metric_values`'
    names. This is the number papers in this line of work report: the best checkpoint chosen
    on the test set itself, so it is optimistic.
    """
    column = f"avg_{average_key.replace(':', '-')}"
    if curve.empty:
        return {}
    if column not in curve:
        raise ValueError(f"test curve has no {column!r} (columns: {list(curve.columns)})")
    row = curve.loc[curve[column].to_numpy().argmax()]
    return {name: float(row[name]) for name in curve.columns}
