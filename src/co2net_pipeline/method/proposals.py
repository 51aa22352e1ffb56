"""Proposal generation (spec §5): video scores, attention thresholds, connected runs, OIC score,
Gaussian soft-NMS and the THUMOS14 Ambiguous filter.

Everything here works on NumPy arrays and knows nothing about Kedro. Inputs per video are the
CAS logits `cas: (T, C+1)` (background = last column) and the fused `attention: (T,)` in (0, 1).
Proposals are in snippet units (1 snippet = 16 frames at 25 fps = 0.64 s).

The hot paths are array code: all attention thresholds are split into runs at once, OIC scores
come from prefix sums, and soft-NMS runs once for all videos and classes together — split into
the connected components of the overlap graph (boxes that do not overlap never decay each
other), its loop is over "pick number k", each step vectorised over all components.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from co2net_pipeline.common.config import dataclass_from_dict
from co2net_pipeline.data.annotations import SNIPPETS_PER_SECOND, seconds_to_snippets

SECONDS_PER_SNIPPET = 1.0 / SNIPPETS_PER_SECOND  # 16 / 25 = 0.64

PROPOSAL_COLUMNS = [
    "video_id",
    "label",
    "class_idx",
    "score",
    "t_start",
    "t_end",
    "t_start_s",
    "t_end_s",
]


def _default_attention_thresholds() -> list[float]:
    return np.linspace(0.1, 0.9, 10).tolist()


@dataclass
class ProposalParams:
    """Parameters of `multiple_threshold_hamnet` (spec §5); defaults are the reference values.

    class_threshold: classes with video score >= this are localised (argmax if none).
    attention_thresholds: attention is cut at each of these (strictly greater) into runs.
    topk_divisor: video scores average the top max(1, T // topk_divisor) snippets.
    oic_margin: outer region = this fraction of the run length on each side.
    oic_weight: weight of the video score added to the OIC score.
    soft_nms_sigma: Gaussian soft-NMS decay exp(-IoU² / sigma).
    skip_lone_index0: reference quirk. The reference tests `indices.any()` before grouping the
        above-threshold snippet indices, so a threshold whose index list is exactly [0] (only the
        first snippet above it) yields no proposal at all, while snippet 0 inside a longer list
        forms a normal run. The paper describes no such rule; set False to keep that lone run.
    ambiguous_filter: drop proposals touching a THUMOS14 Ambiguous interval (spec §5 step 7);
        only applied when ambiguous intervals are given.
    """

    class_threshold: float = 0.2
    attention_thresholds: list[float] = field(default_factory=_default_attention_thresholds)
    topk_divisor: int = 10
    oic_margin: float = 0.25
    oic_weight: float = 0.2
    soft_nms_sigma: float = 0.3
    skip_lone_index0: bool = True
    ambiguous_filter: bool = True

    def __post_init__(self) -> None:
        self.attention_thresholds = [float(t) for t in np.ravel(self.attention_thresholds)]
        if not self.attention_thresholds:
            raise ValueError("ProposalParams: attention_thresholds is empty")
        if int(self.topk_divisor) < 1:
            raise ValueError(f"ProposalParams: topk_divisor must be >= 1, got {self.topk_divisor}")
        self.topk_divisor = int(self.topk_divisor)
        if not self.soft_nms_sigma > 0:
            raise ValueError(
                f"ProposalParams: soft_nms_sigma must be > 0, got {self.soft_nms_sigma}"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ProposalParams:
        """Build from a parameters dictionary; `None` values keep the default, unknown keys fail."""
        return dataclass_from_dict(cls, values, "parameter(s)", drop_none=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Per-video building blocks


def _check_video(
    cas: np.ndarray, attention: np.ndarray, video: str = "video"
) -> tuple[np.ndarray, np.ndarray]:
    cas = np.asarray(cas, dtype=np.float64)
    attention = np.asarray(attention, dtype=np.float64)
    if cas.ndim != 2 or cas.shape[1] < 2:
        raise ValueError(f"{video}: cas must be (T, C+1) with C >= 1, got shape {cas.shape}")
    if attention.ndim == 2 and attention.shape[1] == 1:
        attention = attention[:, 0]
    if attention.shape != (cas.shape[0],):
        raise ValueError(
            f"{video}: attention must be (T,) = ({cas.shape[0]},), got shape {attention.shape}"
        )
    if not (np.isfinite(cas).all() and np.isfinite(attention).all()):
        raise ValueError(f"{video}: cas/attention contain NaN or infinite values")
    return cas, attention


def video_scores(cas: np.ndarray, attention: np.ndarray, topk_divisor: int = 10) -> np.ndarray:
    """Video-level class scores (spec §5 step 3).

    cas: (T, C+1) logits; attention: (T,). Returns (C,): softmax over the C+1 columns of the
    mean of the top-k values over time of `cas * attention`, k = max(1, T // topk_divisor),
    background entry dropped.
    """
    cas, attention = _check_video(cas, attention)
    return _video_scores(cas * attention[:, None], topk_divisor)


def _video_scores(weighted_cas: np.ndarray, topk_divisor: int) -> np.ndarray:
    t = weighted_cas.shape[0]
    if t == 0:  # a video with no snippets: no evidence, uniform over the C+1 columns
        return np.full(weighted_cas.shape[1] - 1, 1.0 / weighted_cas.shape[1])
    k = max(1, t // int(topk_divisor))
    top = -np.partition(-weighted_cas, k - 1, axis=0)[:k] if k < t else weighted_cas
    logits = top.mean(axis=0)
    logits = logits - logits.max()
    probs = np.exp(logits)
    probs /= probs.sum()
    return probs[:-1]


def selected_classes(scores: np.ndarray, class_threshold: float = 0.2) -> np.ndarray:
    """Classes to localise: {c : score >= threshold}, or the argmax alone if that is empty."""
    chosen = np.flatnonzero(scores >= class_threshold)
    return chosen if chosen.size else np.array([int(np.argmax(scores))])


def connected_runs(
    attention: np.ndarray, thresholds, skip_lone_index0: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of consecutive snippets with attention > threshold, for every threshold.

    attention: (T,); thresholds: (n_thresholds,). Returns (threshold_idx, start, end), each (R,),
    `end` inclusive, ordered by threshold then time (the reference's order). With
    `skip_lone_index0` a threshold whose above-threshold indices are exactly [0] gives no run
    (reference quirk, see `ProposalParams`).
    """
    attention = np.asarray(attention, dtype=np.float64).ravel()
    thresholds = np.asarray(thresholds, dtype=np.float64).ravel()
    above = attention[None, :] > thresholds[:, None]  # (n_thr, T)
    if skip_lone_index0 and above.shape[1]:
        lone0 = above[:, 0] & (above.sum(axis=1) == 1)
        above[lone0, 0] = False
    padded = np.zeros((above.shape[0], above.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = above
    step = np.diff(padded, axis=1)  # +1 at run starts, -1 one past run ends
    thr_idx, starts = np.nonzero(step == 1)
    _, stops = np.nonzero(step == -1)  # same row-major order: one stop per start
    return thr_idx, starts, stops - 1


def oic_scores(
    weighted_cas: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    class_video_scores: np.ndarray,
    margin: float = 0.25,
    weight: float = 0.2,
) -> np.ndarray:
    """Outer-inner-contrast score of every run for every class (spec §5 step 5).

    weighted_cas: (T, K) = cas * attention for the K classes; starts, ends: (R,) inclusive run
    bounds; class_video_scores: (K,). Returns (R, K): mean inside − mean of the outer margins
    (0 if they are empty) + weight · video score. Outer bounds use Python `int()` (truncation).
    """
    t = weighted_cas.shape[0]
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    length = (ends - starts + 1).astype(np.float64)
    prefix = np.zeros((t + 1, weighted_cas.shape[1]), dtype=np.float64)
    np.cumsum(weighted_cas, axis=0, out=prefix[1:])
    inner = (prefix[ends + 1] - prefix[starts]) / length[:, None]
    outer_s = np.maximum(0, np.trunc(starts - margin * length).astype(np.int64))
    outer_e = np.minimum(t - 1, np.trunc(ends + margin * length).astype(np.int64))
    # Clamping keeps empty outer sides empty even for odd (negative) margins.
    outer_s = np.minimum(outer_s, starts)
    outer_e = np.maximum(outer_e, ends)
    count = (starts - outer_s) + (outer_e - ends)
    outer_sum = (prefix[starts] - prefix[outer_s]) + (prefix[outer_e + 1] - prefix[ends + 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        outer = np.where(count[:, None] > 0, outer_sum / np.maximum(count, 1)[:, None], 0.0)
    return inner - outer + weight * np.asarray(class_video_scores, dtype=np.float64)[None, :]


def soft_nms_gaussian(
    starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, sigma: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian soft-NMS of one set of proposals (spec §5 step 6).

    starts, ends, scores: (N,), boxes in snippets with the reference's "+1" convention
    (inter = min(end) − max(start) + 1, area = end − start + 1). Returns (order, decayed_scores):
    `order` (N,) indexes the input in the order boxes are kept, `decayed_scores` (N,) is the
    score each input box had when kept. Every box is returned (no cut-off).
    """
    n = len(scores)
    groups = np.zeros(n, dtype=np.int64)
    rank, decayed = soft_nms_gaussian_batched(groups, starts, ends, scores, sigma)
    return np.argsort(rank, kind="stable"), decayed


def soft_nms_gaussian_batched(
    groups: np.ndarray, starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, sigma: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian soft-NMS run independently inside each group, all groups at once.

    groups, starts, ends, scores: (N,). Within a group the input order is the reference's list
    order, which decides exact ties. Returns (rank, decayed_scores), each (N,): the step at
    which each box was kept within its group, and its score at that moment.

    Emulates the reference step by step: take the arg-max of the remaining list (first on ties),
    swap it with the list head, keep it, decay the rest. Groups are padded into a matrix per
    bucket of similar sizes (so one long video does not widen every row); the loop runs over
    steps, each step vectorised over all groups of the bucket still running.
    """
    groups = np.asarray(groups)
    scores = np.asarray(scores, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    n = len(scores)
    rank = np.zeros(n, dtype=np.int64)
    decayed = scores.copy()
    if n == 0:
        return rank, decayed
    _, group_idx = np.unique(groups, return_inverse=True)
    sizes = np.bincount(group_idx)
    # Members of each group in input order, groups from largest to smallest.
    by_size = np.argsort(-sizes, kind="stable")
    slot_of_group = np.empty_like(by_size)
    slot_of_group[by_size] = np.arange(len(by_size))
    slot = slot_of_group[group_idx]
    members = np.lexsort((np.arange(n), slot))
    slot_sizes = sizes[by_size]
    slot_offsets = np.concatenate([[0], np.cumsum(slot_sizes)])
    first = 0
    while first < len(slot_sizes):
        # A bucket holds groups at least half as large as its largest one.
        last = int(np.searchsorted(-slot_sizes, -(slot_sizes[first] // 2), side="right"))
        last = max(last, first + 1)
        bucket = members[slot_offsets[first] : slot_offsets[last]]
        _soft_nms_padded(bucket, slot_sizes[first:last], starts, ends, scores, sigma, rank, decayed)
        first = last
    return rank, decayed


def _soft_nms_padded(
    members: np.ndarray,
    sizes: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    scores: np.ndarray,
    sigma: float,
    rank: np.ndarray,
    decayed: np.ndarray,
) -> None:
    """Soft-NMS of groups laid out back to back in `members` (sizes non-increasing); writes the
    results into `rank` and `decayed`."""
    n_groups, width = len(sizes), int(sizes[0])
    row = np.repeat(np.arange(n_groups), sizes)
    col = np.arange(len(members)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    # One record per list slot: (score, start, end, box id) so a swap moves all four at once.
    slots = np.zeros((n_groups, width, 4))
    slots[:, :, 0] = -np.inf
    slots[:, :, 3] = -1
    slots[row, col] = np.stack([scores[members], starts[members], ends[members], members], axis=1)
    valid = slots[:, :, 3] >= 0
    active = n_groups
    for k in range(width):
        while sizes[active - 1] <= k:
            active -= 1
        rows = np.arange(active)
        pick = k + np.argmax(slots[:active, k:, 0], axis=1)
        head = slots[rows, k]
        slots[rows, k] = slots[rows, pick]
        slots[rows, pick] = head
        kept = slots[rows, k].astype(np.int64)  # never fancy-indexed in place: a copy
        rank[kept[:, 3]] = k
        decayed[kept[:, 3]] = slots[rows, k, 0]
        if k + 1 == width:
            break
        k1, k2 = slots[:active, k, 1, None], slots[:active, k, 2, None]
        r1, r2 = slots[:active, k + 1 :, 1], slots[:active, k + 1 :, 2]
        inter = np.maximum(np.minimum(k2, r2) - np.maximum(k1, r1) + 1.0, 0.0)
        iou = inter / ((k2 - k1 + 1.0) + (r2 - r1 + 1.0) - inter)
        rest = slots[:active, k + 1 :, 0]
        np.multiply(rest, np.exp(-(iou * iou) / sigma), out=rest, where=valid[:active, k + 1 :])


# --------------------------------------------------------------------------------------------
# Whole videos


def overlap_components(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Connected components of the soft-NMS overlap graph of proposal boxes.

    starts, ends: (N,) boxes with end > start (proposals: end = last snippet + 1). Two boxes
    interact in soft-NMS only if their "+1" intersection min(end) − max(start) + 1 is positive.
    Returns (N,) component ids 0..n−1, numbered in order of their first start.
    """
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    if starts.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    reach = np.maximum.accumulate(ends[order])
    # Sorted by start, a box opens a new component iff no earlier box reaches within 1 of it.
    new = np.ones(starts.size, dtype=bool)
    new[1:] = starts[order][1:] - reach[:-1] >= 1
    component = np.empty(starts.size, dtype=np.int64)
    component[order] = np.cumsum(new) - 1
    return component


@dataclass
class _Candidates:
    """Pre-NMS proposals of one video, per class by threshold then time (the reference's pool
    order); `component` = overlap component of the box (the same for every class)."""

    class_idx: np.ndarray
    score: np.ndarray
    t_start: np.ndarray
    t_end: np.ndarray
    component: np.ndarray
    n_components: int


def _video_candidates(
    cas: np.ndarray, attention: np.ndarray, params: ProposalParams
) -> _Candidates:
    """Steps 2-5 for one video: cas (T, C+1), attention (T,); T = 0 gives no candidates."""
    weighted = cas * attention[:, None]
    scores = _video_scores(weighted, params.topk_divisor)
    classes = selected_classes(scores, params.class_threshold)
    _, starts, ends = connected_runs(
        attention, params.attention_thresholds, params.skip_lone_index0
    )
    if starts.size == 0:
        empty = np.zeros(0)
        none = np.zeros(0, dtype=np.int64)
        return _Candidates(none, empty, empty, empty, none, 0)
    oic = oic_scores(
        weighted[:, classes], starts, ends, scores[classes], params.oic_margin, params.oic_weight
    )  # (R, K)
    n_runs, n_classes = oic.shape
    # Runs are class-agnostic: every selected class gets the same boxes.
    component = overlap_components(starts, ends + 1)
    return _Candidates(
        class_idx=np.repeat(classes, n_runs),
        score=oic.T.ravel(),
        t_start=np.tile(starts, n_classes).astype(np.float64),
        t_end=np.tile(ends + 1, n_classes).astype(np.float64),
        component=np.tile(component, n_classes),
        n_components=int(component.max()) + 1,
    )


def _soft_nms_in_kept_order(
    video_idx: np.ndarray,
    class_idx: np.ndarray,
    component: np.ndarray,
    t_start: np.ndarray,
    t_end: np.ndarray,
    score: np.ndarray,
    sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-NMS per (video, class) → (row order: video, class, kept order; decayed scores).

    `component` must number overlap components uniquely across videos. Boxes of different
    components never decay each other (IoU 0 → weight exp(0) = 1), so soft-NMS runs per
    component — the same decayed scores with far less work. Inside a (video, class) group the
    kept scores are non-increasing in pick order, so the kept order is the descending decayed
    score. (Only an exact score tie between two different boxes of one component could pick in
    another order than the reference, whose tie order also depends on the rest of the list.)
    """
    groups = component * (int(class_idx.max(initial=0)) + 1) + class_idx
    _, decayed = soft_nms_gaussian_batched(groups, t_start, t_end, score, sigma)
    return np.lexsort((-decayed, class_idx, video_idx)), decayed


def video_proposals(
    cas: np.ndarray, attention: np.ndarray, params: ProposalParams | None = None
) -> pd.DataFrame:
    """Proposals of one video after soft-NMS, before Ambiguous filtering (spec §5 steps 2-6).

    cas: (T, C+1) logits; attention: (T,) or (T, 1). Returns a DataFrame with columns class_idx,
    score, t_start, t_end (snippets, end exclusive), per class in kept order.
    """
    params = params or ProposalParams()
    cas, attention = _check_video(cas, attention)
    cand = _video_candidates(cas, attention, params)
    order, decayed = _soft_nms_in_kept_order(
        np.zeros_like(cand.class_idx),
        cand.class_idx,
        cand.component,
        cand.t_start,
        cand.t_end,
        cand.score,
        params.soft_nms_sigma,
    )
    return pd.DataFrame(
        {
            "class_idx": cand.class_idx[order],
            "score": decayed[order],
            "t_start": cand.t_start[order],
            "t_end": cand.t_end[order],
        }
    )


def ambiguous_overlap(
    video_ids: np.ndarray, t_start: np.ndarray, t_end: np.ndarray, ambiguous: pd.DataFrame
) -> np.ndarray:
    """Which proposals share at least one snippet with an Ambiguous interval of their video.

    Proposal [t_start, t_end) snippets → set range(int(t_start), int(t_end)); interval seconds
    [a_s, a_e] → range(round(a_s·25/16), round(a_e·25/16)) with round half to even (spec §5
    step 7). Returns a boolean mask (N,).
    """
    video_ids = np.asarray(video_ids, dtype=object)
    hit = np.zeros(len(video_ids), dtype=bool)
    if ambiguous is None or len(ambiguous) == 0 or len(video_ids) == 0:
        return hit
    p_start = np.trunc(np.asarray(t_start, dtype=np.float64)).astype(np.int64)
    p_end = np.trunc(np.asarray(t_end, dtype=np.float64)).astype(np.int64)
    a_start = seconds_to_snippets(ambiguous["t_start_s"].to_numpy(dtype=np.float64))
    a_end = seconds_to_snippets(ambiguous["t_end_s"].to_numpy(dtype=np.float64))
    a_video = ambiguous["video_id"].astype(str).to_numpy()
    codes, uniques = pd.factorize(pd.Series(video_ids, dtype=object).astype(str))
    lookup = {v: i for i, v in enumerate(uniques)}
    for vid in np.unique(a_video):
        if vid not in lookup:
            continue
        rows = np.flatnonzero(codes == lookup[vid])
        sel = a_video == vid
        s, e = p_start[rows, None], p_end[rows, None]
        gs, ge = a_start[sel][None, :], a_end[sel][None, :]
        # Two integer ranges share an element iff both are non-empty and they interleave.
        shared = (s < e) & (gs < ge) & (np.maximum(s, gs) < np.minimum(e, ge))
        hit[rows] |= shared.any(axis=1)
    return hit


def _check_classes(video: str, cas: np.ndarray, classlist: list[str]) -> None:
    if cas.shape[1] != len(classlist) + 1:
        raise ValueError(
            f"{video}: cas has {cas.shape[1]} columns, expected {len(classlist) + 1} "
            f"(C = {len(classlist)} classes + background)"
        )


def _as_outputs(outputs: Mapping[str, Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    videos = []
    for vid, pair in outputs.items():
        try:
            cas, attention = pair
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{vid}: expected a (cas, attention) pair") from exc
        cas, attention = _check_video(cas, attention, str(vid))
        videos.append((str(vid), cas, attention))
    return videos


def localize_videos(
    outputs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    classlist: list[str],
    params: ProposalParams | None = None,
    ambiguous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Detections of many videos (spec §5 steps 2-8).

    outputs: video_id → (cas (T, C+1) logits, attention (T,)); classlist: C class names (index =
    CAS column). ambiguous: intervals (video_id, t_start_s, t_end_s), applied when
    `params.ambiguous_filter`. Returns one row per detection: video_id, label, class_idx,
    score, t_start, t_end (snippets), t_start_s, t_end_s (seconds = snippets × 16/25), ordered
    by video (input order), class and kept order.
    """
    params = params or ProposalParams()
    videos = _as_outputs(outputs)
    parts: list[tuple[np.ndarray, ...]] = []
    n_components = 0
    for v, (vid, cas, attention) in enumerate(videos):
        _check_classes(vid, cas, classlist)
        cand = _video_candidates(cas, attention, params)
        parts.append(
            (
                np.full(cand.score.size, v),
                cand.class_idx,
                cand.component + n_components,
                cand.score,
                cand.t_start,
                cand.t_end,
            )
        )
        n_components += cand.n_components
    if parts:
        video_idx, class_idx, component, score, t_start, t_end = (
            np.concatenate(p) for p in zip(*parts, strict=True)
        )
    else:
        video_idx = class_idx = component = np.zeros(0, dtype=np.int64)
        score = t_start = t_end = np.zeros(0)
    class_idx = class_idx.astype(np.int64)
    video_idx = video_idx.astype(np.int64)
    order, decayed = _soft_nms_in_kept_order(
        video_idx,
        class_idx,
        component.astype(np.int64),
        t_start,
        t_end,
        score,
        params.soft_nms_sigma,
    )
    names = np.array([vid for vid, _, _ in videos], dtype=object)
    table = pd.DataFrame(
        {
            "video_id": pd.Series(names[video_idx[order]], dtype=object).astype(str),
            "label": np.asarray(list(classlist), dtype=object)[class_idx[order]],
            "class_idx": class_idx[order],
            "score": decayed[order],
            "t_start": t_start[order],
            "t_end": t_end[order],
        }
    )
    if params.ambiguous_filter and ambiguous is not None and len(ambiguous):
        drop = ambiguous_overlap(
            table["video_id"].to_numpy(),
            table["t_start"].to_numpy(),
            table["t_end"].to_numpy(),
            ambiguous,
        )
        table = table[~drop].reset_index(drop=True)
    table["t_start_s"] = table["t_start"] * SECONDS_PER_SNIPPET
    table["t_end_s"] = table["t_end"] * SECONDS_PER_SNIPPET
    return table[PROPOSAL_COLUMNS]


def video_scores_table(
    outputs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    classlist: list[str],
    topk_divisor: int = 10,
) -> pd.DataFrame:
    """Video-level class scores of many videos: DataFrame indexed by video_id, one column per
    class (spec §5 step 3)."""
    videos = _as_outputs(outputs)
    rows = []
    for vid, cas, attention in videos:
        _check_classes(vid, cas, classlist)
        rows.append(_video_scores(cas * attention[:, None], topk_divisor))
    data = np.vstack(rows) if rows else np.zeros((0, len(classlist)))
    return pd.DataFrame(
        data, index=pd.Index([v for v, _, _ in videos], name="video_id"), columns=list(classlist)
    )
