"""`annotation_differences`: the same lines as the straightforward per-video comparison it
replaced, and fast on the 7,202 shipped ActivityNet1.2 videos (the comparison ran ~21 s on
every ingestion of a W-TALC file named ActivityNet1.2)."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from co2net_pipeline.data.annotations import (
    Annotations,
    _examples,
    annotation_differences,
    load_shipped_annotations,
)


def _per_video_differences(ours: Annotations, shipped: Annotations) -> list[str]:
    """The former implementation, kept as the oracle (one Python loop per video)."""
    lines = []
    if list(ours.classlist) != list(shipped.classlist):
        pairs = list(zip(ours.classlist, shipped.classlist, strict=False))
        first = next((i for i, (a, b) in enumerate(pairs) if a != b), len(pairs))
        lines.append(
            f"class list: {len(ours.classlist)} classes vs {len(shipped.classlist)} shipped, "
            f"first difference at index {first}"
        )
    repeated = ours.videos["video_id"][ours.videos["video_id"].duplicated()].unique().tolist()
    if repeated:
        lines.append(f"video names: {len(repeated)} repeated ({_examples(repeated)})")
        ours = replace(ours, videos=ours.videos.drop_duplicates("video_id"))
    ids = ours.videos["video_id"].tolist()
    ref_ids = shipped.videos["video_id"].drop_duplicates().tolist()
    only_ours = [v for v in ids if v not in set(ref_ids)]
    only_shipped = [v for v in ref_ids if v not in set(ids)]
    if only_ours:
        lines.append(
            f"video names: {len(only_ours)} not in the shipped set ({_examples(only_ours)})"
        )
    if only_shipped:
        lines.append(
            f"video names: {len(only_shipped)} shipped video(s) missing ({_examples(only_shipped)})"
        )
    common = [v for v in ids if v in set(ref_ids)]
    ref_common = [v for v in ref_ids if v in set(ids)]
    if common != ref_common:
        first = next(i for i, (a, b) in enumerate(zip(common, ref_common, strict=True)) if a != b)
        lines.append(
            f"video order: differs from position {first} ({common[first]} vs {ref_common[first]})"
        )
    a = ours.videos.set_index("video_id").loc[common]
    b = shipped.videos.set_index("video_id").loc[common]
    gap = np.abs(a["duration_s"].to_numpy(float) - b["duration_s"].to_numpy(float))
    changed = [v for v, g in zip(common, gap, strict=True) if not g <= 1e-6]
    if changed:
        lines.append(
            f"durations: {len(changed)} video(s) differ, by up to {np.nanmax(gap):.3f} s "
            f"({_examples(changed)})"
        )
    relabelled = [
        v
        for v, x, y in zip(common, a["labels"], b["labels"], strict=True)
        if sorted(x) != sorted(y)
    ]
    if relabelled:
        lines.append(f"labels: {len(relabelled)} video(s) differ ({_examples(relabelled)})")

    def by_video(segments: pd.DataFrame) -> dict[str, list]:
        keyed = segments.assign(
            t_start_s=segments["t_start_s"].round(6), t_end_s=segments["t_end_s"].round(6)
        )
        return {
            v: sorted(map(tuple, g[["t_start_s", "t_end_s", "label"]].to_numpy().tolist()))
            for v, g in keyed.groupby("video_id", sort=False)
        }

    seg_a, seg_b = by_video(ours.segments), by_video(shipped.segments)
    moved = [v for v in common if seg_a.get(v, []) != seg_b.get(v, [])]
    if moved:
        lines.append(f"segments: {len(moved)} video(s) differ ({_examples(moved)})")
    return lines


@pytest.fixture(scope="module")
def anet() -> Annotations:
    """The first 400 shipped ActivityNet1.2 videos (the oracle is quadratic)."""
    full = load_shipped_annotations("activitynet12")
    keep = set(full.videos["video_id"].iloc[:400])
    return replace(
        full,
        videos=full.videos.iloc[:400].reset_index(drop=True),
        segments=full.segments[full.segments["video_id"].isin(keep)].reset_index(drop=True),
    )


def _edit(base: Annotations, kind: str) -> Annotations:
    videos, segments = base.videos.copy(), base.segments.copy()
    ids = videos["video_id"].tolist()
    first_seg = segments.index[segments["video_id"] == ids[7]][0]
    if kind == "rename":
        videos.loc[[3, 90], "video_id"] = ["renamed_a", "renamed_b"]
    elif kind == "drop":
        videos = videos.drop(index=[5, 6, 200])
    elif kind == "reorder":
        videos = videos.iloc[[1, 0, *range(2, len(videos))]]
    elif kind == "duration":
        videos.loc[[4, 11], "duration_s"] += [0.5, 1e-9]
        videos.loc[12, "duration_s"] = np.nan
    elif kind == "relabel":
        videos.at[9, "labels"] = [*videos.at[9, "labels"], base.classlist[0]]
        videos.at[10, "labels"] = list(reversed(videos.at[10, "labels"]))  # same set
    elif kind == "segments":
        segments.loc[first_seg, "t_end_s"] += 0.25
        extra = segments[segments["video_id"] == ids[20]].iloc[[0]]
        segments = pd.concat([segments, extra])  # a repeated segment: another multiset
        segments.loc[segments["video_id"] == ids[30], "label"] = base.classlist[1]
        segments = segments[segments["video_id"] != ids[40]]  # a video loses all segments
        segments = segments.iloc[::-1]  # order alone changes nothing
        segments.loc[segments["video_id"] == ids[50], "t_start_s"] += 4e-7  # rounds the same
    elif kind == "nan_time":
        segments.loc[first_seg, "t_start_s"] = np.nan
    elif kind == "repeated_id":
        videos = pd.concat([videos, videos.iloc[[2]]], ignore_index=True)
    elif kind == "classlist":
        return replace(base, classlist=[*base.classlist[:5], "Other", *base.classlist[6:]])
    return replace(base, videos=videos.reset_index(drop=True), segments=segments)


KINDS = [
    "same",
    "rename",
    "drop",
    "reorder",
    "duration",
    "relabel",
    "segments",
    "nan_time",
    "repeated_id",
    "classlist",
]


@pytest.mark.parametrize("kind", KINDS)
def test_annotation_differences_as_the_per_video_comparison(anet, kind) -> None:
    ours = _edit(anet, kind)
    expected = _per_video_differences(ours, anet)
    assert annotation_differences(ours, anet) == expected
    assert bool(expected) == (kind != "same")


def test_segment_edits_name_each_changed_video(anet) -> None:
    lines = annotation_differences(_edit(anet, "segments"), anet)
    ids = anet.videos["video_id"]
    assert lines == [
        f"segments: 4 video(s) differ ({ids[7]}, {ids[20]}, {ids[30]}, ... (4 in all))"
    ]


def test_shipped_activitynet_compares_fast() -> None:
    shipped = load_shipped_annotations("activitynet12")
    ours = replace(shipped, videos=shipped.videos.copy(), segments=shipped.segments.copy())
    ours.segments.loc[ours.segments.index[-1], "t_end_s"] += 1.0
    started = time.perf_counter()
    lines = annotation_differences(ours, shipped)
    elapsed = time.perf_counter() - started
    last = shipped.segments["video_id"].iloc[-1]
    assert lines == [f"segments: 1 video(s) differ ({last})"]
    assert elapsed < 2.0, f"{elapsed:.1f} s for the 7,202 shipped videos (was ~21 s)"
