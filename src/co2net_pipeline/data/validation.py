"""Checking features against annotations before anything is written.

`validate_dataset` reads every video once (one at a time) and either raises a
`DataValidationError` naming the file, the video and the problem, or returns the tables the
rest of the pipeline uses plus a report of everything suspicious but usable (warnings).

Errors: features not (T, 2D) with 2D = 2·feature_dim, non-numeric, NaN/inf; a video
with features but no annotation or the reverse; duplicated video ids; a segment or video-level
label outside the class list; non-finite segment times; unreadable, truncated or unsafe files.

Warnings (reference behaviour kept unless an option says otherwise): snippet count far from
duration·25/16; segments past the duration; segments with start ≥ end; videos too short for
the sampler; video-level labels that disagree with the segment labels; empty video-level
labels; videos without segments; missing durations; videos with no snippets (T = 0, unusable)
or all-zero features (flagged `all_zero`), which the original tolerates.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from co2net_pipeline.common.config import dataclass_from_dict
from co2net_pipeline.data.annotations import (
    SNIPPETS_PER_SECOND,
    Annotations,
    expected_snippets,
    seconds_to_snippets,
)
from co2net_pipeline.data.errors import DataValidationError
from co2net_pipeline.data.formats import FeatureSource

_MAX_LISTED = 5  # ids quoted in an error message; the count is always given

__all__ = [
    "DataValidationError",
    "ValidatedDataset",
    "ValidationParams",
    "degenerate_videos_line",
    "report_to_json",
    "report_to_markdown",
    "validate_dataset",
]


@dataclass
class ValidationParams:
    """Validation settings.

    feature_dim: channels per modality D; features must be (T, 2D). None: taken from the first
        video (all others must agree).
    length_tolerance, length_tolerance_abs: warn when |T − round(duration·25/16)| exceeds
        max(length_tolerance_abs, length_tolerance·expected).
    min_snippets: videos with fewer snippets are reported as "short" (a warning; hence 11: the
        reference drops ActivityNet videos with ≤ 10 snippets from its train/test lists).
        Ingestion keeps them `usable`: which short videos leave the lists is decided by the
        snippet-sampling stage from `snippet_sampling.dataset_class` alone, not by the dataset's
        name; their ground truth still counts in evaluation, as in the reference.
    clip_segments_to_duration: clip segment ends to the video duration. Default False: the
        reference evaluator uses the annotated times as they are; in THUMOS14 the 30 segments
        "past the duration" lie in 5 videos whose stored duration is too short (e.g.
        video_test_0000270: 176 s, segments up to 714 s), so clipping would delete real ground
        truth.
    drop_empty_segments: drop segments with start ≥ end. Default False: the reference keeps them
        (ActivityNet1.2 has 10 zero-length segments; all 3582 validation instances count).
    """

    feature_dim: int | None = None
    length_tolerance: float = 0.1
    length_tolerance_abs: int = 2
    min_snippets: int = 11
    clip_segments_to_duration: bool = False
    drop_empty_segments: bool = False

    @classmethod
    def from_dict(cls, values: Mapping | None) -> ValidationParams:
        """From a parameters dictionary; unknown keys are an error."""
        return dataclass_from_dict(cls, values, "validation parameter(s)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class ValidatedDataset:
    """A dataset that passed validation.

    videos: video_id, subset, duration_s, n_snippets, snippets_per_second (25/16), labels
        (list[str], video-level weak label), usable (False: no snippets; short videos stay
        usable, `snippet_sampling.dataset_class` decides whether they are listed), all_zero
        (True: T > 0 and the features sum to 0, the original's test; for
        non-negative features such as I3D's, every value is 0).
    segments: video_id, t_start_s, t_end_s, label, class_idx, start_snippet, end_snippet
        (round half-even of t·25/16, as the reference evaluator).
    classlist: class names, index = class_idx. ambiguous: video_id, t_start_s, t_end_s.
    """

    name: str
    classlist: list[str]
    videos: pd.DataFrame
    segments: pd.DataFrame
    ambiguous: pd.DataFrame
    feature_dim: int
    source: FeatureSource = field(repr=False)

    def iter_features(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield `(video_id, float32 (T, 2D))` in table order; re-checks each shape against the table."""
        expected = dict(zip(self.videos["video_id"], self.videos["n_snippets"], strict=True))
        width = 2 * self.feature_dim
        try:
            for vid, array in self.source.iter_features(self.videos["video_id"].tolist()):
                if array.size == 0 and expected[vid] == 0:  # an empty entry, e.g. shape (0,)
                    array = np.zeros((0, width), np.float32)
                if array.ndim != 2 or array.shape != (expected[vid], width):
                    raise DataValidationError(
                        f"{self.source.location(vid)}: video {vid}: features changed since validation "
                        f"(shape {array.shape}, validated ({expected[vid]}, {width}))"
                    )
                yield vid, np.asarray(array, dtype=np.float32)
        except DataValidationError:
            raise
        except (ValueError, OSError) as exc:
            raise DataValidationError(str(exc)) from exc


def _listing(ids: list[str]) -> str:
    shown = ", ".join(ids[:_MAX_LISTED])
    return shown + (f", … ({len(ids)} in all)" if len(ids) > _MAX_LISTED else "")


def _check_ids(source: FeatureSource, annotations: Annotations) -> None:
    ann_ids = annotations.videos["video_id"].astype(str).tolist()
    where_ann = ", ".join(str(p) for p in source.annotation_paths) or annotations.name
    dup = sorted(
        annotations.videos["video_id"][annotations.videos["video_id"].duplicated()]
        .astype(str)
        .unique()
    )
    if dup:
        raise DataValidationError(
            f"{where_ann}: duplicated video id(s) in the annotations: {_listing(dup)}"
        )
    feat_ids = source.video_ids
    dup = sorted(pd.Series(feat_ids)[pd.Series(feat_ids).duplicated()].unique())
    if dup:
        raise DataValidationError(
            f"{source.path}: duplicated video id(s) in the features: {_listing(dup)}"
        )
    bad = [v for v in ann_ids if not v or "/" in v or v in (".", "..")]
    if bad:
        raise DataValidationError(
            f"{where_ann}: video id {bad[0]!r} is empty or contains '/' (unusable as a key)"
        )
    ann_set = set(ann_ids)
    unannotated = [v for v in feat_ids if v not in ann_set]
    if unannotated:
        raise DataValidationError(
            f"{source.path}: {len(unannotated)} video(s) have features but no annotation in "
            f"{where_ann}: {_listing(unannotated)}"
        )
    feat_set = set(feat_ids)
    missing = [v for v in ann_ids if v not in feat_set]
    if missing:
        raise DataValidationError(
            f"{source.path}: {len(missing)} annotated video(s) have no features: {_listing(missing)}"
        )


def _check_labels(annotations: Annotations, where: str) -> None:
    classes = set(annotations.classlist)
    if not annotations.classlist:
        raise DataValidationError(f"{where}: empty class list")
    if len(classes) != len(annotations.classlist):
        dup = pd.Series(annotations.classlist)
        raise DataValidationError(
            f"{where}: duplicated class name(s) {sorted(dup[dup.duplicated()].unique())}"
        )
    seg = annotations.segments
    unknown = seg[~seg["label"].isin(classes)]
    if len(unknown):
        row = unknown.iloc[0]
        raise DataValidationError(
            f"{where}: video {row['video_id']}: segment label '{row['label']}' is not in the class list "
            f"({len(unknown)} such segment(s))"
        )
    times = seg[["t_start_s", "t_end_s"]].to_numpy(np.float64)
    bad = ~np.isfinite(times).all(axis=1)
    if bad.any():
        row = seg.iloc[int(np.flatnonzero(bad)[0])]
        raise DataValidationError(
            f"{where}: video {row['video_id']}: segment time is not a finite number "
            f"({row['t_start_s']}, {row['t_end_s']})"
        )
    for vid, labels in zip(
        annotations.videos["video_id"], annotations.videos["labels"], strict=True
    ):
        outside = [lab for lab in labels if lab not in classes]
        if outside:
            raise DataValidationError(
                f"{where}: video {vid}: video-level label '{outside[0]}' is not in the class list"
            )


def _check_features(
    source: FeatureSource, feature_dim: int | None
) -> tuple[dict[str, int], int, set[str]]:
    """Read every video once; return ({video_id: T}, D, ids of all-zero videos: T > 0 and
    features that sum to 0, the original's test).

    T = 0 (also an empty entry of any shape) and all-zero features are accepted: the original
    tolerates both (they leave its ActivityNet train and test lists and class-pair pools)."""
    lengths: dict[str, int] = {}
    all_zero: set[str] = set()
    dim = feature_dim
    # feature_dim None: the majority width wins, so a mismatch blames the odd video, not the
    # first one read; {width: (first video's location, number of videos)}
    widths: dict[int, tuple[str, int]] = {}
    iterator = source.iter_features()
    while True:
        try:
            item = next(iterator, None)
        except DataValidationError:
            raise
        except (ValueError, OSError) as exc:  # unreadable, truncated, unsafe pickle
            raise DataValidationError(str(exc)) from exc
        if item is None:
            break
        vid, array = item
        where = f"{source.location(vid)}: video {vid}"
        if isinstance(array, np.ndarray) and array.size == 0 and array.ndim != 2:
            lengths[vid] = 0  # an empty entry of another shape, e.g. (0,): T = 0, no width
            continue
        if not isinstance(array, np.ndarray) or array.ndim != 2:
            shape = getattr(array, "shape", None)
            raise DataValidationError(
                f"{where}: features must be a 2-D (T, 2D) array, got shape {shape}"
            )
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise DataValidationError(
                f"{where}: features have dtype {array.dtype}, expected a real number type"
            )
        n, width = array.shape
        if feature_dim is None:
            first, count = widths.get(width, (where, 0))
            widths[width] = (first, count + 1)
        elif width != 2 * dim:
            raise DataValidationError(
                f"{where}: features have {width} columns, expected {2 * dim} (2 × feature_dim {dim})"
            )
        finite = np.isfinite(array)
        if not finite.all():
            rows = np.flatnonzero(~finite.all(axis=1))
            kind = "NaN" if np.isnan(array[rows[0]]).any() else "inf"
            raise DataValidationError(
                f"{where}: features contain {kind} values in {rows.size} snippet(s), first at snippet {rows[0]}"
            )
        lengths[vid] = n
        # the original's test (`features.sum() == 0`, on the features as stored): the same as
        # all zero for non-negative features such as I3D's, and also true of values that cancel
        if n and array.sum() == 0:
            all_zero.add(vid)
    if feature_dim is None:
        dim = _majority_dim(widths, len(lengths))
    if dim is None:
        raise DataValidationError(f"{source.path}: no video features found")
    return lengths, dim, all_zero


def _majority_dim(widths: dict[int, tuple[str, int]], n_videos: int) -> int | None:
    """D from the width most videos have (ties: the first read); an odd width is an error
    naming its first video."""
    if not widths:
        return None
    majority = max(widths, key=lambda w: widths[w][1])  # max keeps the first of equal counts
    for width, (where, count) in widths.items():
        if width != majority:
            raise DataValidationError(
                f"{where}: features have {width} columns, expected {majority} (the width of "
                f"{widths[majority][1]} of {n_videos} videos; {count} video(s) have {width})"
            )
    if majority == 0 or majority % 2:
        where = widths[majority][0]
        raise DataValidationError(
            f"{where}: features have {majority} columns, which cannot split into two equal "
            "modalities (RGB then flow)"
        )
    return majority // 2


def _warning(message: str, videos: list[str], count: int | None = None, **details) -> dict:
    out = {"count": len(videos) if count is None else count, "message": message, "videos": videos}
    out.update(details)
    return out


def _stats(values: np.ndarray) -> dict:
    if values.size == 0:
        return {"n": 0}
    return {
        "n": int(values.size),
        "min": int(values.min()),
        "median": float(np.median(values)),
        "mean": round(float(values.mean()), 2),
        "p90": float(np.percentile(values, 90)),
        "max": int(values.max()),
        "total": int(values.sum()),
    }


def validate_dataset(
    source: FeatureSource,
    annotations: Annotations,
    params: ValidationParams | Mapping | None = None,
) -> tuple[ValidatedDataset, dict]:
    """Validate `source` against `annotations`; raise `DataValidationError` or return (dataset, report).

    Reads each video's features once (streaming; W-TALC keeps its single object array). The
    report is JSON-serialisable: counts per subset, snippet-length statistics, per-class instance
    counts, warnings {name: {count, message, videos, …}} and the parameters used.
    """
    if not isinstance(params, ValidationParams):
        params = ValidationParams.from_dict(params)
    where_ann = ", ".join(str(p) for p in source.annotation_paths) or annotations.name
    _check_ids(source, annotations)
    _check_labels(annotations, where_ann)
    lengths, dim, all_zero = _check_features(source, params.feature_dim)
    if params.feature_dim is None and source.feature_width not in (None, 2 * dim):
        raise DataValidationError(
            f"{source.path}: header width {source.feature_width} ≠ features width {2 * dim}"
        )

    warnings: dict[str, dict] = {}
    videos = _video_table(annotations, lengths, params, warnings)
    _degenerate_videos(videos, all_zero, warnings)
    segments = _segment_table(annotations, videos, params, warnings)
    _label_warnings(videos, segments, warnings)

    videos = videos[
        [
            "video_id",
            "subset",
            "duration_s",
            "n_snippets",
            "snippets_per_second",
            "labels",
            "usable",
            "all_zero",
        ]
    ].reset_index(drop=True)
    segments = segments[
        ["video_id", "t_start_s", "t_end_s", "label", "class_idx", "start_snippet", "end_snippet"]
    ]
    dataset = ValidatedDataset(
        annotations.name,
        list(annotations.classlist),
        videos,
        segments,
        annotations.ambiguous.copy(),
        dim,
        source,
    )
    report = _report(dataset, source, warnings, params)
    return dataset, report


def _video_table(
    annotations: Annotations, lengths: Mapping[str, int], params: ValidationParams, warnings: dict
) -> pd.DataFrame:
    """The videos table with n_snippets, a usable duration and `usable`; adds the missing
    duration, length mismatch and short video warnings to `warnings`."""
    videos = annotations.videos.copy()
    videos["video_id"] = videos["video_id"].astype(str)
    videos["labels"] = [list(labs) for labs in videos["labels"]]
    n_snippets = videos["video_id"].map(lengths).astype(np.int64)
    videos["n_snippets"] = n_snippets

    duration = videos["duration_s"].astype(np.float64)
    if not annotations.durations_known:  # a CSV: no durations to check the lengths against
        duration = pd.Series(np.nan, index=videos.index)
    no_duration = ~np.isfinite(duration) | (duration <= 0)
    if no_duration.any() and annotations.durations_known:
        ids = videos.loc[no_duration, "video_id"].tolist()
        warnings["missing_duration"] = _warning("no usable duration; set to n_snippets·16/25", ids)
    duration = duration.where(~no_duration, n_snippets / SNIPPETS_PER_SECOND)
    videos["duration_s"] = duration
    videos["snippets_per_second"] = SNIPPETS_PER_SECOND

    expected = np.maximum(expected_snippets(duration.to_numpy()), 1)
    off = np.abs(n_snippets.to_numpy() - expected)
    far = (
        off > np.maximum(params.length_tolerance_abs, params.length_tolerance * expected)
    ) & ~no_duration.to_numpy()
    if far.any():
        rows = videos[far]
        warnings["length_mismatch"] = _warning(
            f"snippet count differs from round(duration·25/16) by more than "
            f"max({params.length_tolerance_abs}, {params.length_tolerance:g}·expected)",
            rows["video_id"].tolist(),
            details=[
                {"video": v, "n_snippets": int(n), "expected": int(e)}
                for v, n, e in zip(rows["video_id"], rows["n_snippets"], expected[far], strict=True)
            ],
        )

    short = (n_snippets < params.min_snippets).to_numpy()
    videos["usable"] = True
    if short.any():
        warnings["short_videos"] = _warning(
            f"fewer than {params.min_snippets} snippets; kept (snippet_sampling.dataset_class="
            "activitynet12 leaves videos of <= 10 snippets out of the train and test lists, as "
            "the original's ActivityNet class)",
            videos.loc[short, "video_id"].tolist(),
        )

    return videos


def _degenerate_videos(videos: pd.DataFrame, all_zero: set[str], warnings: dict) -> None:
    """Flag videos with no snippets (never usable: nothing to sample or score; the original
    drops them from its ActivityNet lists and would crash on one in THUMOS14's) and videos
    whose features are all zero (`all_zero`: kept; the ActivityNet class-pair pools leave them
    out, as the original's); adds the `empty_videos` / `all_zero_videos` warnings."""
    empty = (videos["n_snippets"] == 0).to_numpy()
    videos["usable"] = videos["usable"].to_numpy(bool) & ~empty
    videos["all_zero"] = videos["video_id"].isin(all_zero).to_numpy()
    if empty.any():
        warnings["empty_videos"] = _warning(
            "no snippets (T = 0); marked unusable (left out of the train and test lists)",
            videos.loc[empty, "video_id"].tolist(),
        )
    if videos["all_zero"].any():
        warnings["all_zero_videos"] = _warning(
            "features are all zero (sum to 0, the original's test); kept (out of the "
            "ActivityNet class-pair pools, as the original)",
            videos.loc[videos["all_zero"], "video_id"].tolist(),
        )


def degenerate_videos_line(report: Mapping) -> str | None:
    """One line with the counts of empty (T = 0) and all-zero videos, None when there are
    none (ingestion logs it as one WARNING; the report lists the videos)."""
    found = report.get("warnings", {})
    parts = [
        f"{found[name]['count']} {what}"
        for name, what in (("empty_videos", "empty (T = 0)"), ("all_zero_videos", "all-zero"))
        if name in found
    ]
    if not parts:
        return None
    return (
        f"{' and '.join(parts)} video(s) in {report.get('dataset', 'the features')}: accepted "
        "as the original does (empty ones leave the train and test lists, all-zero ones the "
        "ActivityNet class-pair pools); see the validation report"
    )


def _segment_table(
    annotations: Annotations, videos: pd.DataFrame, params: ValidationParams, warnings: dict
) -> pd.DataFrame:
    """The segments with class_idx and snippet bounds, clipped / dropped as `params` say; adds
    the past-duration and empty segment warnings to `warnings`."""
    segments = annotations.segments.copy()
    segments["video_id"] = segments["video_id"].astype(str)
    seg_duration = segments["video_id"].map(
        dict(zip(videos["video_id"], videos["duration_s"], strict=True))
    )
    past = (segments["t_end_s"] > seg_duration).to_numpy()
    if past.any():
        ids = sorted(segments.loc[past, "video_id"].unique())
        action = (
            "clipped to the duration" if params.clip_segments_to_duration else "kept as annotated"
        )
        warnings["segments_past_duration"] = _warning(
            f"segments ending after the video duration; {action}",
            ids,
            count=int(past.sum()),
            n_videos=len(ids),
        )
        if params.clip_segments_to_duration:
            segments["t_end_s"] = np.minimum(segments["t_end_s"], seg_duration)
    empty = (segments["t_start_s"] >= segments["t_end_s"]).to_numpy()
    if empty.any():
        ids = sorted(segments.loc[empty, "video_id"].unique())
        action = "dropped" if params.drop_empty_segments else "kept as annotated"
        warnings["empty_segments"] = _warning(
            f"segments with start ≥ end; {action}", ids, count=int(empty.sum()), n_videos=len(ids)
        )
        if params.drop_empty_segments:
            segments = segments[~empty]
    segments = segments.reset_index(drop=True)
    class_idx = {name: i for i, name in enumerate(annotations.classlist)}
    segments["class_idx"] = segments["label"].map(class_idx).astype(np.int64)
    segments["start_snippet"] = seconds_to_snippets(segments["t_start_s"].to_numpy())
    segments["end_snippet"] = seconds_to_snippets(segments["t_end_s"].to_numpy())

    return segments


def _label_warnings(videos: pd.DataFrame, segments: pd.DataFrame, warnings: dict) -> None:
    """Weak labels that disagree with the segments, empty weak labels, videos without GT."""
    seg_labels = (
        segments.groupby("video_id", sort=False)["label"].agg(lambda s: sorted(set(s))).to_dict()
    )
    disagree = [
        v
        for v, labs in zip(videos["video_id"], videos["labels"], strict=True)
        if v in seg_labels and sorted(set(labs)) != seg_labels[v]
    ]
    if disagree:
        warnings["label_disagreement"] = _warning(
            "video-level labels (weak labels used for training) differ from the segment labels",
            disagree,
        )
    empty_labels = [
        v for v, labs in zip(videos["video_id"], videos["labels"], strict=True) if not labs
    ]
    if empty_labels:
        warnings["empty_video_labels"] = _warning(
            "empty video-level label (no weak label)", empty_labels
        )
    no_segments = [v for v in videos["video_id"] if v not in seg_labels]
    if no_segments:
        warnings["videos_without_segments"] = _warning("no ground-truth segment", no_segments)


def _report(
    dataset: ValidatedDataset, source: FeatureSource, warnings: dict, params: ValidationParams
) -> dict:
    videos, segments = dataset.videos, dataset.segments
    seg_subset = segments["video_id"].map(
        dict(zip(videos["video_id"], videos["subset"], strict=True))
    )
    subsets = {}
    for name, group in videos.groupby("subset", sort=True):
        segs = segments[seg_subset == name]
        per_class = segs["label"].value_counts()
        videos_per_class = {
            c: int(sum(c in labs for labs in group["labels"])) for c in dataset.classlist
        }
        subsets[str(name)] = {
            "videos": len(group),
            "usable_videos": int(group["usable"].sum()),
            "instances": len(segs),
            "snippets": _stats(group["n_snippets"].to_numpy()),
            "instances_per_class": {c: int(per_class.get(c, 0)) for c in dataset.classlist},
            "videos_per_class": videos_per_class,
        }
    return {
        "dataset": dataset.name,
        "format": source.format,
        "features_path": str(source.path),
        "annotations_path": [str(p) for p in source.annotation_paths],
        "feature_dim": dataset.feature_dim,
        "n_videos": len(videos),
        "n_instances": len(segments),
        "n_classes": len(dataset.classlist),
        "snippets": _stats(videos["n_snippets"].to_numpy()),
        "subsets": subsets,
        "warnings": warnings,
        "params": params.to_dict(),
    }


def report_to_markdown(report: Mapping) -> str:
    """A human-readable validation report (the CLI prints it; ingestion saves it next to the JSON)."""
    lines = [
        f"# Validation report: {report['dataset']}",
        "",
        f"- features: `{report['features_path']}` (format {report['format']}), "
        f"feature_dim {report['feature_dim']} per modality",
        f"- annotations: {', '.join(f'`{p}`' for p in report['annotations_path']) or '(given)'}",
        f"- {report['n_videos']} videos, {report['n_instances']} ground-truth instances, "
        f"{report['n_classes']} classes",
        "",
        "## Subsets",
        "",
        "| subset | videos | usable | instances | snippets min | median | max | total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, sub in report["subsets"].items():
        s = sub["snippets"]
        lines.append(
            f"| {name} | {sub['videos']} | {sub['usable_videos']} | {sub['instances']} | "
            f"{s.get('min', '')} | {s.get('median', '')} | {s.get('max', '')} | {s.get('total', '')} |"
        )
    names = list(report["subsets"])
    if names:
        lines += [
            "",
            "## Instances per class",
            "",
            "| class | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        classes = list(next(iter(report["subsets"].values()))["instances_per_class"])
        for c in classes:
            counts = " | ".join(str(report["subsets"][n]["instances_per_class"][c]) for n in names)
            lines.append(f"| {c} | {counts} |")
    lines += ["", "## Warnings", ""]
    if not report["warnings"]:
        lines.append("None.")
    for key, warn in report["warnings"].items():
        shown = ", ".join(warn["videos"][:10]) + (" …" if len(warn["videos"]) > 10 else "")
        count = (
            f"{warn['count']} in {warn['n_videos']} videos" if "n_videos" in warn else warn["count"]
        )
        lines.append(f"- **{key}** ({count}): {warn['message']}. Videos: {shown}")
    return "\n".join(lines) + "\n"


def report_to_json(report: Mapping) -> str:
    """The report as indented JSON."""
    return json.dumps(report, indent=2, sort_keys=False, default=str)
