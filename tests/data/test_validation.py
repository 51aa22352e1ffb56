"""Validation: every error names file, video and problem; warnings are counted and listed."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from data_helpers import make_annotations, make_features, write_json, write_npy_folder, write_wtalc

from co2net_pipeline.data.annotations import Annotations
from co2net_pipeline.data.formats import open_feature_source
from co2net_pipeline.data.validation import (
    DataValidationError,
    ValidationParams,
    degenerate_videos_line,
    report_to_markdown,
    validate_dataset,
)


def _wtalc(tmp_path, annotations, features, **params):
    write_wtalc(tmp_path, annotations, features)
    source, ann = open_feature_source(tmp_path, "wtalc")
    return validate_dataset(source, ann, params)


def _npy(tmp_path, annotations, features, **params):
    write_npy_folder(tmp_path / "feats", features)
    source, ann = open_feature_source(
        tmp_path / "feats", "npy-folder", write_json(tmp_path / "a.json", annotations)
    )
    return validate_dataset(source, ann, params)


def test_clean_dataset_tables(tmp_path, tiny):
    annotations, features = tiny
    dataset, report = _wtalc(tmp_path, annotations, features, feature_dim=3)
    assert dataset.feature_dim == 3
    assert list(dataset.videos.columns) == [
        "video_id",
        "subset",
        "duration_s",
        "n_snippets",
        "snippets_per_second",
        "labels",
        "usable",
        "all_zero",
    ]
    assert dataset.videos["n_snippets"].tolist() == [16, 25, 12, 20]
    assert not dataset.videos["all_zero"].any()
    assert dataset.videos["snippets_per_second"].unique().tolist() == [25 / 16]
    assert dataset.videos["labels"].tolist() == [["Jump"], ["Run"], ["Jump", "Run"], ["Run"]]
    assert list(dataset.segments.columns) == [
        "video_id",
        "t_start_s",
        "t_end_s",
        "label",
        "class_idx",
        "start_snippet",
        "end_snippet",
    ]
    assert dataset.segments["class_idx"].tolist() == [0, 0, 1, 0, 1, 1]
    assert report["warnings"] == {}
    assert report["subsets"]["validation"]["videos"] == 2
    assert report["subsets"]["test"]["instances"] == 3
    assert report["subsets"]["test"]["instances_per_class"] == {"Jump": 1, "Run": 2}
    assert report["snippets"]["total"] == 73
    assert "| test | 2 | 2 | 3 |" in report_to_markdown(report)
    streamed = dict(dataset.iter_features())
    assert all(a.dtype == np.float32 for a in streamed.values())
    np.testing.assert_array_equal(streamed["vid_d"], features["vid_d"])


def test_snippet_rounding_is_half_to_even(tmp_path, tiny):
    annotations, features = tiny
    # 0.32 s → 0.5 snippets → 0; 0.96 s → 1.5 → 2; 2.4 s → 3.75 → 4 (reference: Python round()).
    annotations.segments.loc[0, ["t_start_s", "t_end_s"]] = [0.32, 0.96]
    annotations.segments.loc[1, ["t_start_s", "t_end_s"]] = [0.96, 2.4]
    dataset, _ = _wtalc(tmp_path, annotations, features)
    assert dataset.segments["start_snippet"].tolist()[:2] == [0, 2]
    assert dataset.segments["end_snippet"].tolist()[:2] == [2, 4]


# ---------------------------------------------------------------- errors


def test_wrong_width(tmp_path, tiny):
    annotations, features = tiny
    with pytest.raises(DataValidationError) as err:
        _wtalc(tmp_path, annotations, features, feature_dim=4)
    assert (
        "Tiny-I3D-JOINTFeatures.npy[0]: video vid_a: features have 6 columns, expected 8 (2 × feature_dim 4)"
        in str(err.value)
    )


def test_width_must_agree_between_videos(tmp_path, tiny):
    annotations, features = tiny
    features["vid_c"] = features["vid_c"][:, :4]
    with pytest.raises(
        DataValidationError, match=r"vid_c\.npy: video vid_c: features have 4 columns, expected 6"
    ):
        _npy(tmp_path, annotations, features)


def test_odd_width(tmp_path, tiny):
    annotations, features = tiny
    features = {v: a[:, :5] for v, a in features.items()}
    with pytest.raises(
        DataValidationError, match=r"video vid_a: features have 5 columns, which cannot split"
    ):
        _wtalc(tmp_path, annotations, features)


@pytest.mark.parametrize("value, kind", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_non_finite_values(tmp_path, tiny, value, kind):
    annotations, features = tiny
    features["vid_b"][7, 2] = value
    features["vid_b"][9, 0] = value
    with pytest.raises(DataValidationError) as err:
        _npy(tmp_path, annotations, features)
    assert (
        f"vid_b.npy: video vid_b: features contain {kind} values in 2 snippet(s), first at snippet 7"
        in str(err.value)
    )


def test_features_must_be_2d_real_numbers(tmp_path, tiny):
    annotations, features = tiny
    features["vid_a"] = features["vid_a"][None]
    with pytest.raises(
        DataValidationError,
        match=r"video vid_a: features must be a 2-D \(T, 2D\) array, got shape \(1, 16, 6\)",
    ):
        _wtalc(tmp_path / "a", annotations, features)
    features["vid_a"] = np.zeros((16, 6), dtype=bool)
    with pytest.raises(
        DataValidationError,
        match="video vid_a: features have dtype bool, expected a real number type",
    ):
        _wtalc(tmp_path / "b", annotations, features)


@pytest.mark.parametrize("empty_shape", [(0, 6), (0,)], ids=["0x2D", "1-D"])
def test_empty_and_all_zero_videos_are_accepted_and_flagged(tmp_path, tiny, empty_shape):
    """The original tolerates a video with no snippets and one whose features are all zero:
    both are kept in the tables, flagged, listed in the report; the empty one is unusable."""
    annotations, features = tiny
    features["vid_a"] = np.zeros(empty_shape, dtype=np.float32)
    features["vid_c"] = np.zeros_like(features["vid_c"])
    dataset, report = _wtalc(tmp_path, annotations, features)
    table = dataset.videos.set_index("video_id")
    assert table.loc["vid_a", "n_snippets"] == 0 and not table.loc["vid_a", "usable"]
    assert table["all_zero"].to_dict() == {
        "vid_a": False,
        "vid_b": False,
        "vid_c": True,
        "vid_d": False,
    }
    assert table.loc["vid_c", "usable"]
    assert report["warnings"]["empty_videos"]["videos"] == ["vid_a"]
    assert report["warnings"]["all_zero_videos"]["videos"] == ["vid_c"]
    assert degenerate_videos_line(report).startswith("1 empty (T = 0) and 1 all-zero video(s)")
    shapes = {vid: a.shape for vid, a in dataset.iter_features()}
    assert shapes["vid_a"] == (0, 6) and shapes["vid_c"] == features["vid_c"].shape
    markdown = report_to_markdown(report)
    assert "**empty_videos** (1)" in markdown and "**all_zero_videos** (1)" in markdown


def test_all_zero_flag_is_the_originals_zero_sum(tmp_path, tiny):
    """The original leaves a video out of its ActivityNet pair pools when
    `features.sum() == 0` (features as stored): values that cancel count, a single non-zero
    value does not."""
    annotations, features = tiny
    cancelling = np.ones_like(features["vid_b"])
    cancelling[:, 3:] = -1.0  # every snippet: +1 RGB, -1 flow
    features["vid_b"] = cancelling
    features["vid_c"] = np.zeros_like(features["vid_c"])
    features["vid_c"][-1, -1] = 1e-30
    dataset, report = _wtalc(tmp_path, annotations, features)
    flagged = dataset.videos.set_index("video_id")["all_zero"]
    assert flagged[flagged].index.tolist() == ["vid_b"]
    assert report["warnings"]["all_zero_videos"]["videos"] == ["vid_b"]


def test_nan_in_a_short_video_is_still_an_error(tmp_path, tiny):
    annotations, features = tiny
    features["vid_a"] = np.full((3, 6), np.nan, dtype=np.float32)
    with pytest.raises(DataValidationError, match="video vid_a: features contain NaN values"):
        _wtalc(tmp_path, annotations, features)


def test_wtalc_entry_that_is_not_an_array(tmp_path, tiny):
    annotations, features = tiny
    entries = [features[v] for v in annotations.videos["video_id"]]
    entries[2] = [[1.0, 2.0]]
    write_wtalc(tmp_path, annotations, entries)
    source, ann = open_feature_source(tmp_path, "wtalc")
    with pytest.raises(
        DataValidationError,
        match=r"JOINTFeatures\.npy\[2\]: video vid_c: entry is a list, not an array",
    ):
        validate_dataset(source, ann)


def test_features_without_annotation(tmp_path, tiny):
    annotations, features = tiny
    features["vid_extra"] = features["vid_a"]
    with pytest.raises(DataValidationError) as err:
        _npy(tmp_path, annotations, features)
    assert "feats: 1 video(s) have features but no annotation in" in str(err.value)
    assert "a.json: vid_extra" in str(err.value)


def test_wtalc_more_entries_than_videos(tmp_path, tiny):
    annotations, features = tiny
    entries = [features[v] for v in annotations.videos["video_id"]] + [features["vid_a"]]
    write_wtalc(tmp_path, annotations, entries)
    source, ann = open_feature_source(tmp_path, "wtalc")
    with pytest.raises(
        DataValidationError,
        match=r"JOINTFeatures\.npy: 1 video\(s\) have features but no annotation .*<entry 4>",
    ):
        validate_dataset(source, ann)


def test_annotation_without_features(tmp_path, tiny):
    annotations, features = tiny
    del features["vid_c"]
    with pytest.raises(
        DataValidationError, match=r"feats: 1 annotated video\(s\) have no features: vid_c"
    ):
        _npy(tmp_path, annotations, features)
    entries = [features[v] for v in ["vid_a", "vid_b"]]
    write_wtalc(tmp_path / "w", annotations, entries)
    source, ann = open_feature_source(tmp_path / "w", "wtalc")
    with pytest.raises(
        DataValidationError, match=r"2 annotated video\(s\) have no features: vid_c, vid_d"
    ):
        validate_dataset(source, ann)


def test_duplicated_video_ids(tmp_path, tiny):
    annotations, features = tiny
    videos = annotations.videos.copy()
    videos.loc[3, "video_id"] = "vid_a"
    dup = Annotations("Tiny", annotations.classlist, videos, annotations.segments)
    with pytest.raises(
        DataValidationError,
        match=r"Tiny-Annotations: duplicated video id\(s\) in the annotations: vid_a",
    ):
        _wtalc(tmp_path, dup, [features[v] for v in annotations.videos["video_id"]])


def test_segment_label_not_in_classlist(tmp_path, tiny):
    annotations, features = tiny
    annotations.segments.loc[4, "label"] = "Swim"
    with pytest.raises(DataValidationError) as err:
        _wtalc(tmp_path, annotations, features)
    assert (
        "Tiny-Annotations: video vid_c: segment label 'Swim' is not in the class list (1 such segment(s))"
        in str(err.value)
    )


def test_video_label_not_in_classlist(tmp_path, tiny):
    annotations, features = tiny
    annotations.videos.at[1, "labels"] = ["Swim"]
    with pytest.raises(
        DataValidationError, match="video vid_b: video-level label 'Swim' is not in the class list"
    ):
        _wtalc(tmp_path, annotations, features)


def test_non_finite_segment_times(tmp_path, tiny):
    annotations, features = tiny
    annotations.segments.loc[2, "t_end_s"] = np.nan
    with pytest.raises(
        DataValidationError, match="video vid_b: segment time is not a finite number"
    ):
        _wtalc(tmp_path, annotations, features)


def test_truncated_npy_file(tmp_path, tiny):
    annotations, features = tiny
    write_npy_folder(tmp_path / "feats", features)
    path = tmp_path / "feats" / "vid_b.npy"
    path.write_bytes(path.read_bytes()[:-40])
    source, ann = open_feature_source(
        tmp_path / "feats", "npy-folder", write_json(tmp_path / "a.json", annotations)
    )
    with pytest.raises(
        DataValidationError, match=r"vid_b\.npy: video vid_b: not a readable \.npy file"
    ):
        validate_dataset(source, ann)


def test_truncated_wtalc_file(tmp_path, tiny):
    annotations, features = tiny
    write_wtalc(tmp_path, annotations, features)
    path = tmp_path / "Tiny-I3D-JOINTFeatures.npy"
    path.write_bytes(path.read_bytes()[:-100])
    source, ann = open_feature_source(tmp_path, "wtalc")
    with pytest.raises(
        DataValidationError,
        match=r"Tiny-I3D-JOINTFeatures\.npy\[3\]: video vid_d: unreadable, the file is truncated",
    ):
        validate_dataset(source, ann)


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_unsafe_pickle_is_refused(tmp_path, tiny, capsys):
    annotations, features = tiny
    write_wtalc(tmp_path, annotations, features)
    # A valid object-array header followed by a pickle that calls builtins.print.
    path = tmp_path / "Tiny-I3D-JOINTFeatures.npy"
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "|O", "fortran_order": False, "shape": (4,)}
        )
        pickle.dump(_Exploit(), fh, protocol=3)
    source, ann = open_feature_source(tmp_path, "wtalc")
    with pytest.raises(
        DataValidationError, match=r"JOINTFeatures\.npy: refusing to unpickle 'builtins\.print'"
    ):
        validate_dataset(source, ann)
    assert "pwned" not in capsys.readouterr().out


def test_unknown_parameter(tmp_path, tiny):
    with pytest.raises(ValueError, match=r"unknown validation parameter\(s\) \['min_snipets'\]"):
        ValidationParams.from_dict({"min_snipets": 3})


# ---------------------------------------------------------------- warnings


def test_length_mismatch_warning(tmp_path, tiny):
    annotations, features = tiny
    features["vid_b"] = features["vid_b"][:20]  # expected 25, tolerance max(2, 2.5)
    features["vid_a"] = features["vid_a"][:14]  # expected 16: within tolerance
    _, report = _npy(tmp_path, annotations, features)
    warn = report["warnings"]["length_mismatch"]
    assert warn["count"] == 1 and warn["videos"] == ["vid_b"]
    assert warn["details"] == [{"video": "vid_b", "n_snippets": 20, "expected": 25}]


def test_segments_past_duration_kept_by_default_clipped_on_request(tmp_path, tiny):
    annotations, features = tiny
    annotations.segments.loc[2, "t_end_s"] = 17.5  # vid_b lasts 16 s
    annotations.segments.loc[5, "t_end_s"] = 13.0  # vid_d lasts 12.8 s
    dataset, report = _wtalc(tmp_path / "a", annotations, features)
    warn = report["warnings"]["segments_past_duration"]
    assert (warn["count"], warn["n_videos"], warn["videos"]) == (2, 2, ["vid_b", "vid_d"])
    assert dataset.segments.loc[2, "t_end_s"] == 17.5
    dataset, _ = _wtalc(tmp_path / "b", annotations, features, clip_segments_to_duration=True)
    assert dataset.segments.loc[2, "t_end_s"] == 16.0 and dataset.segments.loc[5, "t_end_s"] == 12.8


def test_empty_segments_kept_by_default_dropped_on_request(tmp_path, tiny):
    annotations, features = tiny
    annotations.segments.loc[1, ["t_start_s", "t_end_s"]] = [6.0, 6.0]
    annotations.segments.loc[3, ["t_start_s", "t_end_s"]] = [2.5, 0.5]
    dataset, report = _wtalc(tmp_path / "a", annotations, features)
    assert report["warnings"]["empty_segments"]["count"] == 2
    assert report["warnings"]["empty_segments"]["videos"] == ["vid_a", "vid_c"]
    assert len(dataset.segments) == 6
    dataset, _ = _wtalc(tmp_path / "b", annotations, features, drop_empty_segments=True)
    assert len(dataset.segments) == 4


def test_short_videos_are_reported_and_kept_usable(tmp_path, tiny):
    """Ingestion reports short videos but keeps them usable, whatever the dataset's name: the
    snippet-sampling stage's `dataset_class` decides whether they are listed."""
    annotations, features = tiny
    dataset, report = _wtalc(tmp_path / "a", annotations, features, min_snippets=13)
    assert report["warnings"]["short_videos"]["videos"] == ["vid_c"]
    assert dataset.videos["usable"].all()
    annotations = make_annotations("ActivityNet1.2")
    write_wtalc(tmp_path / "b", annotations, make_features(annotations), name="ActivityNet1.2")
    source, ann = open_feature_source(tmp_path / "b", "wtalc")
    dataset, report = validate_dataset(source, ann, {"min_snippets": 13})
    assert dataset.videos["usable"].all()
    assert "dataset_class=activitynet12" in report["warnings"]["short_videos"]["message"]


def test_label_disagreement_and_empty_labels(tmp_path, tiny):
    annotations, features = tiny
    annotations.videos.at[2, "labels"] = ["Jump"]  # segments: Jump and Run
    annotations.videos.at[3, "labels"] = []
    _, report = _wtalc(tmp_path, annotations, features)
    assert report["warnings"]["label_disagreement"]["videos"] == ["vid_c", "vid_d"]
    assert report["warnings"]["empty_video_labels"]["videos"] == ["vid_d"]
    md = report_to_markdown(report)
    assert "**label_disagreement** (2)" in md and "vid_c, vid_d" in md


def test_missing_duration_and_videos_without_segments(tmp_path, tiny):
    annotations, features = tiny
    videos = annotations.videos.copy()
    videos.loc[1, "duration_s"] = np.nan
    segments = annotations.segments[annotations.segments["video_id"] != "vid_d"]
    ann = Annotations("Tiny", annotations.classlist, videos, segments)
    dataset, report = _wtalc(tmp_path, ann, features)
    assert report["warnings"]["missing_duration"]["videos"] == ["vid_b"]
    assert dataset.videos.loc[1, "duration_s"] == pytest.approx(25 * 16 / 25)
    assert report["warnings"]["videos_without_segments"]["videos"] == ["vid_d"]


def test_report_is_json_serialisable(tmp_path, tiny):
    import json

    annotations, features = tiny
    annotations.segments.loc[2, "t_end_s"] = 17.5
    _, report = _wtalc(tmp_path, annotations, features)
    assert json.loads(json.dumps(report))["warnings"]["segments_past_duration"]["count"] == 1
    assert isinstance(pd.DataFrame(report["subsets"]).T, pd.DataFrame)


def test_unsafe_or_inconsistent_annotation_files(tmp_path, tiny):
    annotations, features = tiny
    write_wtalc(tmp_path, annotations, features)
    labels = tmp_path / "Tiny-Annotations" / "labels.npy"
    with open(labels, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "|O", "fortran_order": False, "shape": (4,)}
        )
        pickle.dump(_Exploit(), fh, protocol=3)
    with pytest.raises(
        DataValidationError, match=r"labels\.npy: refusing to unpickle 'builtins\.print'"
    ):
        open_feature_source(tmp_path, "wtalc")
    np.save(
        labels, np.array([["Jump"], ["Run"], ["Jump"], ["Run"]], dtype=object), allow_pickle=True
    )
    with pytest.raises(
        DataValidationError,
        match=r"Tiny-Annotations: video vid_a has 2 segments but 1 segment labels",
    ):
        open_feature_source(tmp_path, "wtalc")
    (tmp_path / "gt.json").write_text("{not json")
    write_npy_folder(tmp_path / "feats", features)
    with pytest.raises(DataValidationError, match=r"gt\.json: not a readable JSON file"):
        open_feature_source(tmp_path / "feats", "npy-folder", tmp_path / "gt.json")
