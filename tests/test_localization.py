"""Proposal generation (spec §5): golden cases, building blocks, reference quirks."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from golden import PROJECT_ROOT, golden_cases

from co2net_pipeline.data.annotations import load_shipped_annotations
from co2net_pipeline.method.proposals import (
    PROPOSAL_COLUMNS,
    ProposalParams,
    ambiguous_overlap,
    connected_runs,
    localize_videos,
    oic_scores,
    overlap_components,
    selected_classes,
    soft_nms_gaussian,
    soft_nms_gaussian_batched,
    video_proposals,
    video_scores,
    video_scores_table,
)

SCORE_TOL = 1e-4
VIDEO_SCORE_TOL = 1e-5
KEY = ["video_id", "label", "t_start", "t_end"]


def _load_reference_loops():
    spec = importlib.util.spec_from_file_location(
        "reference_loops", PROJECT_ROOT / "tests" / "reference_loops.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _golden_inputs(case: Path):
    meta = json.loads((case / "meta.json").read_text())
    with np.load(case / "inputs.npz", allow_pickle=False) as arrays:
        classlist = [str(c) for c in arrays["classlist"]]
        outputs = {v: (arrays[f"cas/{v}"], arrays[f"attn/{v}"]) for v in meta["videos"]}
    params = ProposalParams.from_dict(
        {**meta["params"], "ambiguous_filter": meta["ambiguous_filter"]}
    )
    return meta, classlist, outputs, params


def _assert_same_multiset(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same (video, label, t_start, t_end) multiset; scores paired in sorted order within a key."""
    got = got.sort_values(KEY + ["score"]).reset_index(drop=True)
    expected = expected.sort_values(KEY + ["score"]).reset_index(drop=True)
    assert len(got) == len(expected)
    for column in ("video_id", "label"):
        assert got[column].astype(str).tolist() == expected[column].astype(str).tolist()
    for column in ("t_start", "t_end"):
        np.testing.assert_array_equal(got[column].to_numpy(float), expected[column].to_numpy(float))
    np.testing.assert_allclose(
        got["score"].to_numpy(), expected["score"].to_numpy(), rtol=0, atol=SCORE_TOL
    )


# --------------------------------------------------------------------------------------------
# Golden cases


@pytest.mark.parametrize("case", golden_cases("proposals"))
def test_golden_proposals(case: Path) -> None:
    meta, classlist, outputs, params = _golden_inputs(case)
    ambiguous = (
        load_shipped_annotations(meta["dataset"]).ambiguous if meta["ambiguous_filter"] else None
    )
    got = localize_videos(outputs, classlist, params, ambiguous)
    assert list(got.columns) == PROPOSAL_COLUMNS
    expected = pd.read_csv(case / "expected.csv", dtype={"video_id": str, "label": str})
    _assert_same_multiset(got, expected)
    np.testing.assert_allclose(got["t_start_s"], got["t_start"] * 0.64)


@pytest.mark.parametrize("case", golden_cases("proposals"))
def test_golden_proposals_video_scores(case: Path) -> None:
    _, classlist, outputs, params = _golden_inputs(case)
    expected = pd.read_csv(case / "expected_video_scores.csv", dtype={"video_id": str}).set_index(
        "video_id"
    )
    got = video_scores_table(outputs, classlist, params.topk_divisor)
    assert list(got.columns) == list(expected.columns)
    np.testing.assert_allclose(
        got.loc[expected.index].to_numpy(), expected.to_numpy(), rtol=0, atol=VIDEO_SCORE_TOL
    )


# --------------------------------------------------------------------------------------------
# Building blocks


def test_video_scores_topk_softmax() -> None:
    rng = np.random.default_rng(0)
    cas = rng.normal(size=(25, 4))
    attention = rng.uniform(size=25)
    weighted = cas * attention[:, None]
    top = np.sort(weighted, axis=0)[::-1][:2].mean(axis=0)  # k = max(1, 25 // 10) = 2
    expected = np.exp(top) / np.exp(top).sum()
    np.testing.assert_allclose(video_scores(cas, attention, 10), expected[:-1])
    # T < divisor: k = 1 (max over time).
    short = video_scores(cas[:5], attention[:5], 10)
    top1 = weighted[:5].max(axis=0)
    np.testing.assert_allclose(short, (np.exp(top1) / np.exp(top1).sum())[:-1])


def test_selected_classes_threshold_and_argmax_fallback() -> None:
    assert selected_classes(np.array([0.1, 0.2, 0.5])).tolist() == [1, 2]
    assert selected_classes(np.array([0.1, 0.15, 0.05])).tolist() == [1]


def test_connected_runs_per_threshold() -> None:
    attention = np.array([0.2, 0.6, 0.7, 0.1, 0.8, 0.3, 0.9])
    thr_idx, starts, ends = connected_runs(attention, [0.5, 0.75])
    assert list(zip(thr_idx.tolist(), starts.tolist(), ends.tolist(), strict=True)) == [
        (0, 1, 2),
        (0, 4, 4),
        (0, 6, 6),  # a run ending at the last snippet
        (1, 4, 4),
        (1, 6, 6),
    ]


def test_lone_index0_quirk() -> None:
    only_first = np.array([0.95, 0.05, 0.05, 0.05])
    assert connected_runs(only_first, [0.5])[1].size == 0
    _, starts, ends = connected_runs(only_first, [0.5], skip_lone_index0=False)
    assert (starts.tolist(), ends.tolist()) == ([0], [0])
    # Index 0 inside a longer index list forms a normal (here single-snippet) run.
    _, starts, ends = connected_runs(np.array([0.95, 0.05, 0.95, 0.95]), [0.5])
    assert (starts.tolist(), ends.tolist()) == ([0, 2], [0, 3])
    # T = 1 can only ever give the lone index 0: no proposals at all.
    frame = video_proposals(np.array([[2.0, 0.0, 0.0]]), np.array([0.99]))
    assert frame.empty


def _oic_loop(weighted, s, e, vscore, margin=0.25, weight=0.2):
    t, n = len(weighted), e - s + 1
    inner = weighted[s : e + 1].mean()
    outer_s = max(0, int(s - margin * n))
    outer_e = min(t - 1, int(e + margin * n))
    outer_idx = list(range(outer_s, s)) + list(range(e + 1, outer_e + 1))
    outer = weighted[outer_idx].mean() if outer_idx else 0.0
    return inner - outer + weight * vscore


def test_oic_scores_match_definition() -> None:
    rng = np.random.default_rng(1)
    weighted = rng.normal(size=(30, 2))
    runs = [(0, 0), (0, 3), (5, 5), (10, 17), (26, 29), (0, 29), (1, 2)]
    starts = np.array([s for s, _ in runs])
    ends = np.array([e for _, e in runs])
    vscore = np.array([0.3, 0.7])
    got = oic_scores(weighted, starts, ends, vscore)
    for r, (s, e) in enumerate(runs):
        for c in range(2):
            assert got[r, c] == pytest.approx(_oic_loop(weighted[:, c], s, e, vscore[c]), abs=1e-12)


def test_soft_nms_plus_one_iou_convention() -> None:
    # [0, 2] and [2, 4] touch; with the +1 convention they share one unit: IoU = 1 / (3 + 3 - 1).
    order, decayed = soft_nms_gaussian(
        np.array([0.0, 2.0, 10.0]), np.array([2.0, 4.0, 12.0]), np.array([0.9, 0.8, 0.7])
    )
    assert order.tolist() == [0, 1, 2]
    assert decayed[1] == pytest.approx(0.8 * math.exp(-(0.2**2) / 0.3))
    assert decayed[2] == pytest.approx(0.7)  # disjoint: inter = max(0, 12 - ... ) = 0


def test_soft_nms_identical_boxes_and_reordering() -> None:
    starts, ends = np.zeros(3), np.full(3, 5.0)
    order, decayed = soft_nms_gaussian(starts, ends, np.array([1.0, 1.0, 1.0]))
    assert sorted(decayed.tolist()) == pytest.approx([math.exp(-2 / 0.3), math.exp(-1 / 0.3), 1.0])
    # A decayed box can fall below a lower-scored disjoint one.
    order, decayed = soft_nms_gaussian(
        np.array([0.0, 0.0, 20.0]), np.array([5.0, 5.0, 25.0]), np.array([1.0, 0.9, 0.5])
    )
    assert order.tolist() == [0, 2, 1]
    assert decayed.tolist() == pytest.approx([1.0, 0.9 * math.exp(-1 / 0.3), 0.5])


def test_soft_nms_batched_matches_reference_per_group() -> None:
    ref = _load_reference_loops()
    rng = np.random.default_rng(2)
    n = 300
    groups = rng.integers(0, 12, n)
    groups[:5] = 99  # one group much larger than the others
    groups[rng.random(n) < 0.3] = 99
    starts = rng.integers(0, 60, n).astype(float)
    ends = starts + rng.integers(1, 12, n)
    scores = rng.normal(size=n)
    rank, decayed = soft_nms_gaussian_batched(groups, starts, ends, scores, 0.3)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        kept = ref.reference_soft_nms([[g, scores[i], starts[i], ends[i]] for i in idx], 0.3)
        ours = idx[np.argsort(rank[idx])]
        np.testing.assert_allclose([k[1] for k in kept], decayed[ours], atol=1e-12)
        np.testing.assert_array_equal([k[2] for k in kept], starts[ours])
        np.testing.assert_array_equal([k[3] for k in kept], ends[ours])


def test_overlap_components_use_plus_one_convention() -> None:
    starts = np.array([0.0, 2.0, 3.0, 10.0, 12.0, 1.0])
    ends = np.array([2.0, 4.0, 4.0, 11.0, 20.0, 1.5])
    # [0,2]-[2,4] touch (+1 convention: one shared unit), [3,4] overlaps [2,4], [1,1.5] sits
    # inside [0,2]; [10,11] and [12,20] are one unit apart (inter = 11 - 12 + 1 = 0).
    assert overlap_components(starts, ends).tolist() == [0, 0, 0, 1, 2, 0]


def test_video_proposals_kept_order_per_class() -> None:
    rng = np.random.default_rng(5)
    cas, attention = _burst_video(rng, 40, 1)
    cas[:, 2] = cas[:, 1] - 0.2  # a second class above the class threshold
    table = video_proposals(cas, attention)
    assert table["class_idx"].unique().tolist() == [1, 2]
    for _, group in table.groupby("class_idx"):
        assert group["score"].is_monotonic_decreasing


def test_ambiguous_overlap_snippet_sets_and_rounding() -> None:
    # Interval 1.6 s - 3.2 s → snippets round(2.5) = 2 (half to even), round(5.0) = 5 → {2, 3, 4}.
    ambiguous = pd.DataFrame({"video_id": ["v"], "t_start_s": [1.6], "t_end_s": [3.2]})
    video = np.array(["v", "v", "v", "v", "w", "v"])
    t_start = np.array([0.0, 0.0, 5.0, 1.9, 0.0, 3.0])
    t_end = np.array([3.0, 2.0, 9.0, 2.9, 9.0, 3.0])
    hit = ambiguous_overlap(video, t_start, t_end, ambiguous)
    # [0,3) shares 2; [0,2) does not; [5,9) starts after; int(1.9)=1..int(2.9)=2 → {1}; other
    # video; empty range [3,3).
    assert hit.tolist() == [True, False, False, False, False, False]


def _burst_video(rng, t: int, cls: int, n_classes: int = 3):
    attention = np.full(t, 0.05) + rng.uniform(0, 0.02, t)
    cas = rng.normal(0, 0.3, size=(t, n_classes + 1))
    s = t // 3
    attention[s : s + 6] = [0.3, 0.6, 0.95, 0.92, 0.5, 0.2]
    cas[s : s + 6, cls] += 5.0
    return cas, attention


def test_localize_videos_columns_filter_and_params() -> None:
    rng = np.random.default_rng(3)
    outputs = {"v1": _burst_video(rng, 30, 0), "v2": _burst_video(rng, 30, 2)}
    classlist = ["a", "b", "c"]
    plain = localize_videos(outputs, classlist, ProposalParams(), None)
    assert list(plain.columns) == PROPOSAL_COLUMNS
    assert set(plain["video_id"]) == {"v1", "v2"}
    assert set(plain.loc[plain.video_id == "v1", "label"]) == {"a"}
    np.testing.assert_allclose(plain["t_end_s"], plain["t_end"] * 16 / 25)
    # Ambiguous interval over v1's burst (snippets 10..16): v1 loses every proposal there, v2 none.
    ambiguous = pd.DataFrame({"video_id": ["v1"], "t_start_s": [6.4], "t_end_s": [10.24]})
    filtered = localize_videos(outputs, classlist, ProposalParams(), ambiguous)
    assert (filtered.video_id == "v1").sum() < (plain.video_id == "v1").sum()
    assert (filtered.video_id == "v2").sum() == (plain.video_id == "v2").sum()
    off = localize_videos(outputs, classlist, ProposalParams(ambiguous_filter=False), ambiguous)
    pd.testing.assert_frame_equal(off, plain)
    # One video at a time gives the same rows.
    single = video_proposals(*outputs["v2"])
    np.testing.assert_allclose(
        np.sort(single["score"].to_numpy()),
        np.sort(plain.loc[plain.video_id == "v2", "score"].to_numpy()),
    )


def test_localize_videos_matches_reference_loops() -> None:
    ref = _load_reference_loops()
    rng = np.random.default_rng(4)
    classlist = ["a", "b", "c"]
    outputs = {}
    for i in range(6):
        t = int(rng.integers(20, 120))
        logit = np.convolve(rng.normal(0, 1.5, t), np.ones(3) / 3, mode="same")
        cas = rng.normal(0, 1.0, size=(t, 4))
        cas[:, i % 3] += 1.5
        outputs[f"v{i}"] = (cas, 1 / (1 + np.exp(-logit)))
    got = localize_videos(outputs, classlist, ProposalParams(), None)
    rows = []
    for vid, (cas, attention) in outputs.items():
        rows += [
            (vid, classlist[int(c)], s, t0, t1)
            for c, s, t0, t1 in ref.reference_video_proposals(cas, attention)
        ]
    expected = pd.DataFrame(rows, columns=["video_id", "label", "score", "t_start", "t_end"])
    assert len(expected) > 50
    _assert_same_multiset(got, expected)


def test_proposal_params_from_dict() -> None:
    params = ProposalParams.from_dict(
        {"class_threshold": 0.3, "soft_nms_sigma": None, "topk_divisor": 8}
    )
    assert (
        params.class_threshold == 0.3 and params.soft_nms_sigma == 0.3 and params.topk_divisor == 8
    )
    assert params.attention_thresholds == pytest.approx(np.linspace(0.1, 0.9, 10).tolist())
    assert params.skip_lone_index0 and params.ambiguous_filter
    with pytest.raises(ValueError, match="unknown parameter.*class_treshold"):
        ProposalParams.from_dict({"class_treshold": 0.3})


def test_input_errors_name_the_video() -> None:
    with pytest.raises(ValueError, match="v9: cas has 3 columns, expected 4"):
        localize_videos({"v9": (np.zeros((5, 3)), np.zeros(5))}, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"v9: attention must be \(T,\)"):
        localize_videos({"v9": (np.zeros((5, 4)), np.zeros(6))}, ["a", "b", "c"])
    with pytest.raises(ValueError, match="v9: cas/attention contain NaN"):
        localize_videos({"v9": (np.full((5, 4), np.nan), np.zeros(5))}, ["a", "b", "c"])


def test_no_videos() -> None:
    table = localize_videos({}, ["a"])
    assert table.empty and list(table.columns) == PROPOSAL_COLUMNS
