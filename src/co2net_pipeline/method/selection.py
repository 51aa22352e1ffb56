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
    if result.classification_map is not None:
        values["classification_map"] = float(result.classification_map)
    return values


def classification_map(
    cas: Sequence[np.ndarray], labels: np.ndarray, topk_divisor: int | None = None
) -> float:
    """Video-level classification mAP as the original's test loop logs it (spec §5, §7.14).

    cas: per video (T, C+1) raw CAS logits; labels: (N, C) multi-hot. A video's score is the
    softmax over C+1 of the mean of its top-k CAS values over time. topk_divisor: None is the
    original's k = ceil(len(features) / 8) taken after the batch dimension was added, i.e.
    k = 1 (max over time; a bug, T / 8 was meant); an integer d gives k = ceil(T / d). Each
    class's AP is W-TALC's `getAP` on the first C score columns (`ranked_average_precision`);
    the mAP, a fraction, is their mean over the classes with at least one positive video (the
    original averages all C, so a class without one turns its number into NaN).
    """
    scores = []
    for logits in cas:  # loop over videos
        logits = np.asarray(logits, dtype=np.float64)
        k = 1 if topk_divisor is None else max(1, -(-logits.shape[0] // int(topk_divisor)))
        top = np.sort(logits, axis=0)[-k:].mean(axis=0)
        probs = np.exp(top - top.max())
        scores.append(probs / probs.sum())
    labels = np.asarray(labels)
    scores_c = np.asarray(scores).reshape(len(scores), -1)[:, : labels.shape[1]]
    present = np.flatnonzero((labels == 1).sum(axis=0) > 0)
    if not present.size:
        return float("nan")
    return float(ranked_average_precision(scores_c[:, present], labels[:, present]).mean())


def ranked_average_precision(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per column, the mean over the positives of the precision at each positive's rank, as
    W-TALC's `getAP` (which the original's `cmAP` calls) computes it.

    scores: (N, K) confidences; labels: (N, K), 1 = positive. Videos are ranked by descending
    score; tied scores keep their video order (stable sort), and each tied video has its own
    rank, where sklearn's `average_precision_score` gives a tied group one shared precision
    (e.g. scores [s, s, s], labels [0, 1, 1]: 7/12 here and in the original, 2/3 in sklearn).
    The original's `np.argsort(-conf)` breaks ties the same way on short lists (insertion
    sort) and in an unspecified order on long ones. Returns (K,) APs; a column without
    positives gives NaN.
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), axis=0, kind="stable")
    hits = np.take_along_axis(np.asarray(labels) == 1, order, axis=0)
    ranks = np.arange(1, hits.shape[0] + 1)[:, None]
    precision = np.cumsum(hits, axis=0) / ranks
    with np.errstate(invalid="ignore", divide="ignore"):
        return (precision * hits).sum(axis=0) / hits.sum(axis=0)


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
    the THUMOS14 filter (used when `proposals.ambiguous_filter`); tiou: thresholds;
    video_labels: (N, C) multi-hot of the videos in `features` order: when given, the result
    also carries their classification mAP (`classification_map`).
    """

    features: Mapping[str, np.ndarray]
    classlist: Sequence[str]
    proposals: ProposalParams
    ground_truth: pd.DataFrame
    tiou: Sequence[float]
    ambiguous: pd.DataFrame | None = None
    device: torch.device | str = "cpu"
    video_labels: np.ndarray | None = None

    def __call__(self, model: nn.Module) -> DetectionResult:
        """Inference → proposals → mAP of `model` (in whatever mode the caller set)."""
        outputs = run_inference(model, self.features, self.device)
        detections = localize_videos(
            {v: (o["cas"], o["attention"]) for v, o in outputs.items()},
            list(self.classlist),
            self.proposals,
            self.ambiguous if self.proposals.ambiguous_filter else None,
        )
        result = evaluate_detections(
            detections[["video_id", "t_start", "t_end", "label", "score"]],
            self.ground_truth,
            list(self.tiou),
        )
        if self.video_labels is not None:
            cas = [o["cas"] for o in outputs.values()]
            result.classification_map = classification_map(cas, self.video_labels)
        return result


def best_on_test(curve: pd.DataFrame, average_key: str) -> dict[str, float]:
    """The test-curve row with the highest `avg_<average_key>` among the original's test
    points (first one on ties, as the reference's strict `>`): its metrics plus `iteration`.
    Empty when there is no such point.

    curve: one row per scored iteration, columns `iteration` and `detection_metric_values`'
    names, and `reference_point` (1: an iteration the original scores, itr > 0 and itr %
    interval == 0; 0: the extra final point, which the original never scores and which is
    therefore never chosen). This is the number papers in this line of work report: the best
    checkpoint chosen on the test set itself, so it is optimistic.
    """
    column = f"avg_{average_key.replace(':', '-')}"
    if "reference_point" in curve:
        curve = curve[curve["reference_point"] == 1].reset_index(drop=True)
    if curve.empty:
        return {}
    if column not in curve:
        raise ValueError(f"test curve has no {column!r} (columns: {list(curve.columns)})")
    row = curve.loc[curve[column].to_numpy().argmax()]
    return {name: float(row[name]) for name in curve.columns if name != "reference_point"}
