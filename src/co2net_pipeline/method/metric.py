"""Detection AP / mAP (spec §6), exactly as the reference's ActivityNet-derived evaluator.

Per class, predictions are ranked by score; each one, per tIoU threshold, walks the ground-truth
(GT) segments of its video in descending tIoU order (NaN first), stops with a false positive at
the first tIoU below the threshold, skips GT already matched at that threshold and otherwise
becomes a true positive (so it falls through to its next-best GT when the best is taken).
Predictions of a class in a video without GT of that class (or an unknown video) are false
positives; predictions of a class without GT are not scored. AP is the VOC2011 interpolated AP;
mAP is the mean over the classes that have GT.

The matching is greedy and sequential within one (class, video) group only, so it runs in
rounds: round r handles the r-th ranked prediction of every group at once (no two of them can
compete for a GT), vectorised over groups and thresholds. Predictions that reach no GT at the
lowest threshold are false positives without taking part in the rounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

THUMOS14_TIOU = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
ACTIVITYNET_TIOU = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
DEFAULT_TIOU = {"thumos14": THUMOS14_TIOU, "activitynet12": ACTIVITYNET_TIOU}
UNITS = ("snippets", "seconds")
PREDICTION_COLUMNS = ["video_id", "t_start", "t_end", "label", "score"]
GROUND_TRUTH_COLUMNS = ["video_id", "t_start", "t_end", "label"]
# THUMOS14 convention: besides the mean over all thresholds, report the means up to 0.5 and 0.7
# (the reference selects checkpoints by the mean over 0.1:0.7).
PARTIAL_AVERAGE_ENDS = (0.5, 0.7)


def tiou_key(value: float) -> str:
    """A threshold as a JSON key: 0.1 → "0.1", 0.55 → "0.55" (compare keys as numbers)."""
    return f"{round(float(value), 6):g}"


# --------------------------------------------------------------------------------------------
# Result


@dataclass
class DetectionResult:
    """Detection scores. All AP values are fractions in [0, 1].

    tiou: thresholds; map: threshold → mAP; per_class_ap: DataFrame (index class name, columns
    thresholds); average: "first:last" → mean mAP over the thresholds from the first up to
    `last`; n_predictions / n_ground_truth: rows given / GT instances. classification_map: the
    videos' weak-label classification mAP when the scorer computed it (`selection.
    classification_map`; the original prints it at each test point), else None.
    """

    tiou: list[float]
    map: dict[float, float]
    per_class_ap: pd.DataFrame
    average: dict[str, float]
    n_predictions: int
    n_ground_truth: int
    warnings: dict[str, int] = field(default_factory=dict)
    classification_map: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "map": {tiou_key(t): float(v) for t, v in self.map.items()},
            "average": {k: float(v) for k, v in self.average.items()},
            "per_class_ap": {
                str(name): {tiou_key(t): float(row[t]) for t in self.tiou}
                for name, row in self.per_class_ap.iterrows()
            },
            "n_predictions": int(self.n_predictions),
            "n_ground_truth": int(self.n_ground_truth),
        }

    def format_table(self) -> str:
        """mAP per tIoU and the averages, in percent."""
        lines = [f"{'tIoU':>8}  {'mAP (%)':>8}"]
        lines += [f"{tiou_key(t):>8}  {100 * v:8.2f}" for t, v in self.map.items()]
        lines.append("")
        lines += [f"{'avg ' + k:>14}  {100 * v:8.2f}" for k, v in self.average.items()]
        lines.append(
            f"({len(self.per_class_ap)} classes, {self.n_ground_truth} ground-truth instances, "
            f"{self.n_predictions} predictions)"
        )
        return "\n".join(lines)


def average_map(tiou: Sequence[float], maps: Sequence[float]) -> dict[str, float]:
    """Named means: "first:last" over all thresholds and, when the list starts below 0.5, the
    THUMOS14 partial means "first:0.5" and "first:0.7" (thresholds from first up to that one)."""
    tiou = [float(t) for t in tiou]
    maps = [float(m) for m in maps]
    ends = [len(tiou) - 1]
    if tiou and tiou[0] < min(PARTIAL_AVERAGE_ENDS):
        for end in PARTIAL_AVERAGE_ENDS:
            hits = [i for i, t in enumerate(tiou) if math.isclose(t, end, abs_tol=1e-9)]
            if hits and hits[0] < len(tiou) - 1:
                ends.insert(-1, hits[0])
    return {f"{tiou_key(tiou[0])}:{tiou_key(tiou[i])}": float(np.mean(maps[: i + 1])) for i in ends}


# --------------------------------------------------------------------------------------------
# Core


def _check_tiou(tiou_thresholds: Sequence[float]) -> np.ndarray:
    thr = np.asarray([float(t) for t in tiou_thresholds], dtype=np.float64)
    if thr.ndim != 1 or thr.size == 0:
        raise ValueError("tIoU thresholds: need at least one value")
    if not np.all(np.isfinite(thr)) or np.any(thr < 0) or np.any(thr > 1):
        raise ValueError(f"tIoU thresholds must lie in [0, 1], got {thr.tolist()}")
    return thr


def require_columns(table: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; expected {','.join(columns)}")


def segment_iou_pairs(ps, pe, gs, ge) -> np.ndarray:
    """Reference tIoU of paired segments: inter = max(0, min(ends) − max(starts)), union = signed
    lengths summed − inter, no +1; 0/0 (two zero-length segments) gives NaN."""
    inter = np.clip(np.minimum(pe, ge) - np.maximum(ps, gs), 0.0, None)
    union = (pe - ps) + (ge - gs) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def _greedy_matches(
    pred_group: np.ndarray,
    pred_order: np.ndarray,
    pred_start: np.ndarray,
    pred_end: np.ndarray,
    group_first: np.ndarray,
    group_size: np.ndarray,
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    thr: np.ndarray,
) -> np.ndarray:
    """True positives (n_thresholds, n_predictions) of the reference matching.

    pred_group: (N,) index into the GT groups or -1 (no GT: always a false positive);
    pred_order: (N,) rank of each prediction in its class (0 = highest score, ties decided
    upstream); group_first/group_size: each group's slice of the GT arrays (GT sorted by group,
    file order inside).
    """
    n_pred = len(pred_group)
    tp = np.zeros((len(thr), n_pred), dtype=bool)
    has = np.flatnonzero(pred_group >= 0)
    if has.size == 0:
        return tp
    # Every (prediction, GT of its group) pair.
    counts = group_size[pred_group[has]]
    pair_pred = np.repeat(has, counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    pair_gt = np.repeat(group_first[pred_group[has]], counts) + offset
    iou = segment_iou_pairs(
        pred_start[pair_pred], pred_end[pair_pred], gt_start[pair_gt], gt_end[pair_gt]
    )
    is_nan = np.isnan(iou)
    # A pair below the lowest threshold can never be matched: the walk stops there.
    keep = is_nan | (iou >= thr.min())
    pair_pred, pair_gt, iou, is_nan = pair_pred[keep], pair_gt[keep], iou[keep], is_nan[keep]
    if pair_pred.size == 0:
        return tp
    # Round of a prediction = its rank among the candidate predictions of its group.
    cand = np.unique(pair_pred)
    cand = cand[np.lexsort((pred_order[cand], pred_group[cand]))]
    cand_group = pred_group[cand]
    starts = np.flatnonzero(np.r_[True, cand_group[1:] != cand_group[:-1]])
    round_of = np.empty(n_pred, dtype=np.int64)
    round_of[cand] = np.arange(cand.size) - np.repeat(starts, np.diff(np.r_[starts, cand.size]))
    # Walk order inside a prediction: NaN first, then descending tIoU; ties towards the later GT
    # (the reference reverses an ascending argsort, stable for the small per-video arrays).
    order = np.lexsort(
        (-pair_gt, -np.where(is_nan, 0.0, iou), ~is_nan, pair_pred, round_of[pair_pred])
    )
    pair_pred, pair_gt, iou, is_nan = pair_pred[order], pair_gt[order], iou[order], is_nan[order]
    pair_round = round_of[pair_pred]
    bounds = np.searchsorted(pair_round, np.arange(pair_round[-1] + 2))
    passes = is_nan[None, :] | (iou[None, :] >= thr[:, None])  # (n_thr, n_pairs)
    new_pred = np.ones(pair_pred.size, dtype=bool)
    new_pred[1:] = pair_pred[1:] != pair_pred[:-1]
    locked = np.zeros((len(thr), len(gt_start)), dtype=bool)
    for r in range(len(bounds) - 1):
        a, b = bounds[r], bounds[r + 1]
        gt = pair_gt[a:b]
        preds = pair_pred[a:b]
        seg = np.flatnonzero(new_pred[a:b])
        ok = passes[:, a:b] & ~locked[:, gt]
        pos = np.where(ok, np.arange(b - a)[None, :], b - a)
        first = np.minimum.reduceat(pos, seg, axis=1)  # (n_thr, n_preds_in_round)
        t_idx, s_idx = np.nonzero(first < b - a)
        hit = first[t_idx, s_idx]
        locked[t_idx, gt[hit]] = True
        tp[t_idx, preds[seg[s_idx]]] = True
    return tp


def _interpolated_ap(tp: np.ndarray, n_positives: int) -> np.ndarray:
    """VOC2011 interpolated AP per threshold of one class; tp: (n_thr, N) in rank order."""
    if tp.shape[1] == 0:
        return np.zeros(tp.shape[0])
    tp_cum = np.cumsum(tp, axis=1, dtype=np.float64)
    precision = tp_cum / np.arange(1, tp.shape[1] + 1)
    recall = tp_cum / n_positives
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    recall_step = np.diff(recall, axis=1, prepend=0.0)
    return np.sum(recall_step * envelope, axis=1)


def evaluate_detections(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    tiou_thresholds: Sequence[float],
    classes: Sequence[str] | None = None,
) -> DetectionResult:
    """Detection AP per class and tIoU, mAP and averages (spec §6).

    predictions: video_id, t_start, t_end, label (class name), score; ground_truth: video_id,
    t_start, t_end, label — both in the same unit (snippets or seconds). classes: classes to
    evaluate (each must have GT); default: the classes present in the GT, sorted. Predictions
    of other classes are ignored, like the reference which only iterates over GT classes.

    Ties: the reference orders predictions by score and, per prediction, GT by tIoU with a
    reversed `np.argsort`, whose order among equal values depends on the NumPy version and CPU
    (the reference's NumPy 1.18 was stable on arrays of up to 16 elements; recent NumPy SIMD
    sorts are not). Here ties are deterministic and follow that stable case: among equal scores
    the later row ranks first, among equal tIoU the later GT (file order) is tried first.
    """
    require_columns(predictions, PREDICTION_COLUMNS, "predictions")
    require_columns(ground_truth, GROUND_TRUTH_COLUMNS, "ground truth")
    thr = _check_tiou(tiou_thresholds)
    class_names = _scored_classes(ground_truth, classes)
    n_classes = len(class_names)
    gt, pred, score = _encode(predictions, ground_truth, pd.Index(class_names))
    tp_ranked, class_first, n_positives = _ranked_true_positives(gt, pred, score, n_classes, thr)
    ap = np.zeros((len(thr), n_classes))
    for c in range(n_classes):
        ap[:, c] = _interpolated_ap(
            tp_ranked[:, class_first[c] : class_first[c + 1]], int(n_positives[c])
        )

    tiou = [float(t) for t in thr]
    maps = ap.mean(axis=1) if n_classes else np.zeros(len(thr))
    per_class = pd.DataFrame(ap.T, index=pd.Index(class_names, name="class"), columns=tiou)
    return DetectionResult(
        tiou=tiou,
        map={t: float(m) for t, m in zip(tiou, maps, strict=True)},
        per_class_ap=per_class,
        average=average_map(tiou, maps),
        n_predictions=len(predictions),
        n_ground_truth=len(gt.cls),
    )


def _scored_classes(ground_truth: pd.DataFrame, classes: Sequence[str] | None) -> list[str]:
    """`classes` (checked to have GT), else the classes present in the GT, sorted."""
    present = sorted(set(ground_truth["label"].astype(str).tolist()))
    if classes is None:
        return present
    class_names = [str(c) for c in classes]
    missing = [c for c in class_names if c not in set(present)]
    if missing:
        raise ValueError(f"classes without any ground-truth instance cannot be scored: {missing}")
    return class_names


class _Rows(NamedTuple):
    """The rows of one table whose class is scored: class index, (class, video) group key,
    start and end (float64), in table order."""

    cls: np.ndarray
    key: np.ndarray
    start: np.ndarray
    end: np.ndarray


def _encode(
    predictions: pd.DataFrame, ground_truth: pd.DataFrame, class_index: pd.Index
) -> tuple[_Rows, _Rows, np.ndarray]:
    """(GT rows, prediction rows, prediction scores) of the scored classes."""
    gt_cls = class_index.get_indexer(ground_truth["label"].astype(str).to_numpy()).astype(np.int64)
    gt_keep = gt_cls >= 0
    pred_cls = class_index.get_indexer(predictions["label"].astype(str).to_numpy()).astype(np.int64)
    p_rows = np.flatnonzero(pred_cls >= 0)
    gt_cls, pred_cls = gt_cls[gt_keep], pred_cls[p_rows]

    # Video codes shared by GT and predictions; prediction videos without GT get their own
    # codes, which match no GT group.
    gt_vid_names = ground_truth["video_id"].astype(str).to_numpy()[gt_keep]
    pred_vid_names = predictions["video_id"].astype(str).to_numpy()[p_rows]
    vid_codes, _ = pd.factorize(np.concatenate([gt_vid_names, pred_vid_names]))
    gt_vid, pred_vid = vid_codes[: len(gt_vid_names)], vid_codes[len(gt_vid_names) :]
    n_vid = int(vid_codes.max()) + 1 if vid_codes.size else 1

    def column(table: pd.DataFrame, name: str, rows: np.ndarray) -> np.ndarray:
        return table[name].to_numpy(dtype=np.float64)[rows]

    gt = _Rows(
        gt_cls,
        gt_cls * n_vid + gt_vid,
        column(ground_truth, "t_start", gt_keep),
        column(ground_truth, "t_end", gt_keep),
    )
    pred = _Rows(
        pred_cls,
        pred_cls * n_vid + pred_vid,
        column(predictions, "t_start", p_rows),
        column(predictions, "t_end", p_rows),
    )
    return gt, pred, column(predictions, "score", p_rows)


def _ranked_true_positives(
    gt: _Rows, pred: _Rows, score: np.ndarray, n_classes: int, thr: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true-positive flags (K, P) with predictions ranked within their class, the start of each
    class in that ranking (C+1,), the GT count of each class (C,))."""
    g_order = np.argsort(gt.key, kind="stable")
    gt_key, gt_s, gt_e = gt.key[g_order], gt.start[g_order], gt.end[g_order]
    group_keys, group_first, group_size = np.unique(gt_key, return_index=True, return_counts=True)
    n_positives = np.bincount(gt.cls, minlength=n_classes)

    # Rank inside each class: descending score, later row first on ties.
    rank_order = np.lexsort((-np.arange(len(score)), -score, pred.cls))
    class_first = np.searchsorted(pred.cls[rank_order], np.arange(n_classes + 1))
    pred_rank = np.empty(len(score), dtype=np.int64)
    pred_rank[rank_order] = np.arange(len(score)) - class_first[pred.cls[rank_order]]

    gi = np.searchsorted(group_keys, pred.key)
    gi_clip = np.minimum(gi, max(len(group_keys) - 1, 0))
    found = (
        (gi < len(group_keys)) & (group_keys[gi_clip] == pred.key)
        if len(group_keys)
        else np.zeros(len(pred.key), bool)
    )
    pred_group = np.where(found, gi_clip, -1)
    tp = _greedy_matches(
        pred_group, pred_rank, pred.start, pred.end, group_first, group_size, gt_s, gt_e, thr
    )
    return tp[:, rank_order], class_first, n_positives


def subset_ground_truth(segments: pd.DataFrame, videos: pd.DataFrame, subset: str) -> pd.DataFrame:
    """The ground truth of one subset in snippet units (GROUND_TRUTH_COLUMNS), from the
    `segments` / `videos` tables of feature ingestion (reference: round(t·25/16), half to even)."""
    keep = set(videos.loc[videos["subset"] == subset, "video_id"])
    gt = segments[segments["video_id"].isin(keep)]
    return pd.DataFrame(
        {
            "video_id": gt["video_id"].to_numpy(),
            "t_start": gt["start_snippet"].to_numpy(dtype=float),
            "t_end": gt["end_snippet"].to_numpy(dtype=float),
            "label": gt["label"].to_numpy(),
        }
    )


def check_tiou_thresholds(tiou: Sequence[float]) -> list[float]:
    """A user's tIoU list, checked: non-empty, each strictly between 0 and 1, strictly
    increasing (the averages are named "first:last" and the partial means need the order)."""
    values = [float(t) for t in tiou]
    if not values:
        raise ValueError("tIoU thresholds: need at least one value, e.g. 0.1,0.3,0.5")
    outside = [t for t in values if not (math.isfinite(t) and 0.0 < t < 1.0)]
    if outside:
        raise ValueError(
            f"tIoU thresholds must lie strictly between 0 and 1, got {outside[0]:g} "
            f"in {','.join(f'{t:g}' for t in values)}"
        )
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        shown = ",".join(f"{t:g}" for t in values)
        raise ValueError(f"tIoU thresholds must be strictly increasing, got {shown}")
    return values
