"""The test oracle: the reference's loops, transcribed plainly (spec §5 and §6).

This mirrors the structure of the reference implementation: per threshold, per class, per run
OIC scoring with Python lists; soft-NMS that swaps the arg-max to the head of a list and
decays the rest, one pick at a time; and the ActivityNet evaluator's per-prediction walk over
pandas groups. It is deliberately not optimised, so that it can be read against the reference
line by line. tests/test_localization.py and tests/test_evaluation.py check that
`co2net_pipeline.method.proposals` and `co2net_pipeline.method.metric` (the implementations to use)
give its outputs; the benchmarks (benchmarks/localize_speed.py, eval_loop_speed.py) also time
it as the reference's speed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def reference_soft_nms(dets: list[list[float]], sigma: float = 0.3) -> list[list[float]]:
    """Gaussian soft-NMS over rows [class, score, start, end] with the +1 IoU convention."""
    dets = np.array(dets, dtype=np.float64)
    areas = dets[:, 3] - dets[:, 2] + 1
    dets = np.concatenate((dets, areas[:, None]), axis=1)
    kept = []
    while dets.size > 0:
        best = np.argmax(dets[:, 1], axis=0)
        dets[[0, best], :] = dets[[best, 0], :]
        kept.append(dets[0, :-1].tolist())
        left = np.maximum(dets[0, 2], dets[1:, 2])
        right = np.minimum(dets[0, 3], dets[1:, 3])
        inter = np.maximum(right - left + 1, 0.0)
        iou = inter / (dets[0, -1] + dets[1:, -1] - inter)
        dets[1:, 1] *= np.exp(-(iou * iou) / sigma)
        dets = dets[1:, :]
    return kept


def reference_video_proposals(
    cas: np.ndarray,
    attention: np.ndarray,
    thresholds=None,
    class_threshold: float = 0.2,
    topk_divisor: int = 10,
    margin: float = 0.25,
    weight: float = 0.2,
    sigma: float = 0.3,
) -> list[list[float]]:
    """Proposals [class, score, t_start, t_end] of one video, reference loop structure."""
    thresholds = np.linspace(0.1, 0.9, 10) if thresholds is None else thresholds
    attention = np.asarray(attention).reshape(-1)
    weighted = np.asarray(cas) * attention[:, None]
    t = weighted.shape[0]
    k = max(1, t // topk_divisor)
    top = np.mean(np.sort(weighted, axis=0)[::-1][:k], axis=0)
    probs = np.exp(top - top.max())
    scores = (probs / probs.sum())[:-1]
    classes = np.where(scores >= class_threshold)[0]
    if len(classes) == 0:
        classes = np.array([np.argmax(scores)])
    pooled: dict[int, list[list[float]]] = {}
    for th in thresholds:
        indices = np.where(attention > th)[0]
        for c in classes:
            if not indices.any():  # the reference's test: a lone index 0 counts as "no run"
                continue
            runs = np.split(indices, np.where(np.diff(indices) != 1)[0] + 1)
            for run in runs:
                inner = np.mean(weighted[run, c])
                n = len(run)
                outer_s = max(0, int(run[0] - margin * n))
                outer_e = min(t - 1, int(run[-1] + margin * n))
                outer_idx = list(range(outer_s, int(run[0]))) + list(
                    range(int(run[-1] + 1), outer_e + 1)
                )
                outer = np.mean(weighted[outer_idx, c]) if outer_idx else 0
                score = inner - outer + weight * scores[c]
                pooled.setdefault(int(c), []).append([int(c), score, int(run[0]), int(run[-1] + 1)])
    final = []
    for c in pooled:
        final += reference_soft_nms(pooled[c], sigma)
    return final


def reference_filter_ambiguous(
    dets: list[list[float]], intervals: list[tuple[float, float]]
) -> list[list[float]]:
    """Drop [class, score, start, end] rows sharing a snippet with an ambiguous interval (s)."""
    keep = []
    for det in dets:
        hit = False
        for a_s, a_e in intervals:
            amb = set(range(round(a_s * 25 / 16), round(a_e * 25 / 16)))
            prop = set(range(int(det[2]), int(det[3])))
            if amb & prop:
                hit = True
        if not hit:
            keep.append(det)
    return keep


def _segment_iou(target: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    left = np.maximum(target[0], candidates[:, 0])
    right = np.minimum(target[1], candidates[:, 1])
    inter = (right - left).clip(0)
    union = (candidates[:, 1] - candidates[:, 0]) + (target[1] - target[0]) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter.astype(float) / union


def _interpolated_prec_rec(prec: np.ndarray, rec: np.ndarray) -> float:
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def reference_class_ap(
    ground_truth: pd.DataFrame, prediction: pd.DataFrame, tiou_thresholds
) -> np.ndarray:
    """AP per threshold of one class: the per-prediction walk of the ActivityNet evaluator."""
    tiou_thresholds = np.asarray(tiou_thresholds, dtype=np.float64)
    ap = np.zeros(len(tiou_thresholds))
    if prediction.empty:
        return ap
    npos = float(len(ground_truth))
    lock_gt = np.ones((len(tiou_thresholds), len(ground_truth))) * -1
    sort_idx = prediction["score"].values.argsort()[::-1]
    prediction = prediction.loc[sort_idx].reset_index(drop=True)
    tp = np.zeros((len(tiou_thresholds), len(prediction)))
    fp = np.zeros((len(tiou_thresholds), len(prediction)))
    gt_by_video = ground_truth.groupby("video_id")
    for idx, this_pred in prediction.iterrows():
        try:
            gt_video = gt_by_video.get_group(this_pred["video_id"])
        except KeyError:
            fp[:, idx] = 1
            continue
        this_gt = gt_video.reset_index()
        tiou = _segment_iou(
            this_pred[["t_start", "t_end"]].values.astype(float),
            this_gt[["t_start", "t_end"]].values.astype(float),
        )
        order = tiou.argsort()[::-1]
        for tidx, thr in enumerate(tiou_thresholds):
            for jdx in order:
                if tiou[jdx] < thr:
                    fp[tidx, idx] = 1
                    break
                if lock_gt[tidx, this_gt.loc[jdx]["index"]] >= 0:
                    continue
                tp[tidx, idx] = 1
                lock_gt[tidx, this_gt.loc[jdx]["index"]] = idx
                break
            if fp[tidx, idx] == 0 and tp[tidx, idx] == 0:
                fp[tidx, idx] = 1
    tp_cum = np.cumsum(tp, axis=1)
    fp_cum = np.cumsum(fp, axis=1)
    recall = tp_cum / npos
    precision = tp_cum / (tp_cum + fp_cum)
    for tidx in range(len(tiou_thresholds)):
        ap[tidx] = _interpolated_prec_rec(precision[tidx, :], recall[tidx, :])
    return ap


def reference_evaluate(
    predictions: pd.DataFrame, ground_truth: pd.DataFrame, tiou_thresholds
) -> pd.DataFrame:
    """Per-class AP (index class, columns thresholds) for the classes present in the GT."""
    classes = sorted(ground_truth["label"].unique())
    gt_by_label = ground_truth.groupby("label")
    pred_by_label = predictions.groupby("label")
    rows = {}
    for name in classes:
        try:
            preds = pred_by_label.get_group(name).reset_index(drop=True)
        except KeyError:
            preds = pd.DataFrame()
        rows[name] = reference_class_ap(
            gt_by_label.get_group(name).reset_index(drop=True), preds, tiou_thresholds
        )
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(map(float, tiou_thresholds)))
