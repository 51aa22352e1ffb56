"""Annotation text: a byte-order mark is dropped, bytes that are not UTF-8 name file and line."""

from pathlib import Path

import numpy as np
import pytest
from data_helpers import make_annotations

from co2net_pipeline.data.annotations import (
    load_activitynet_json,
    load_ambiguous_intervals,
    load_ground_truth_csv,
    load_wtalc_annotations,
    save_wtalc_annotations,
)


def _wtalc(tmp_path: Path) -> Path:
    return save_wtalc_annotations(make_annotations(), tmp_path / "Tiny-Annotations")


def test_bom_in_classlist_npy_is_dropped(tmp_path):
    folder = _wtalc(tmp_path)
    np.save(folder / "classlist.npy", np.array(["\ufeffJump".encode(), b"Run"], dtype=np.bytes_))
    assert load_wtalc_annotations(folder).classlist == ["Jump", "Run"]


def test_undecodable_npy_entry_names_file_and_entry(tmp_path):
    folder = _wtalc(tmp_path)
    np.save(folder / "classlist.npy", np.array([b"Jump", b"R\xffun"], dtype=np.bytes_))
    with pytest.raises(ValueError, match=r"classlist\.npy: entry 1: not UTF-8 text"):
        load_wtalc_annotations(folder)


def test_bom_in_text_files_is_dropped(tmp_path):
    csv = tmp_path / "gt.csv"
    csv.write_bytes(b"\xef\xbb\xbfvideo_id,t_start,t_end,label\nv1,1,2,BaseballPitch\n")
    assert load_ground_truth_csv(csv).classlist == ["BaseballPitch"]
    amb = tmp_path / "Ambiguous_test.txt"
    amb.write_bytes(b"\xef\xbb\xbfvid_c  1.0 2.0\n")
    assert load_ambiguous_intervals(amb)["video_id"].tolist() == ["vid_c"]
    js = tmp_path / "gt.json"
    js.write_bytes(
        b'\xef\xbb\xbf{"database": {"v1": {"subset": "test", "duration": 5, '
        b'"annotations": [{"segment": [1, 2], "label": "BaseballPitch"}]}}}'
    )
    assert load_activitynet_json(js).classlist == ["BaseballPitch"]


@pytest.mark.parametrize(
    ("name", "loader"),
    [
        ("gt.csv", load_ground_truth_csv),
        ("Ambiguous_test.txt", load_ambiguous_intervals),
        ("gt.json", load_activitynet_json),
    ],
)
def test_decode_error_names_file_and_line(tmp_path, name, loader):
    path = tmp_path / name
    path.write_bytes(b"line one\nline two\nline \xe9 three\n")
    with pytest.raises(ValueError, match=rf"{name}:3: not UTF-8 text \(.*byte 0xe9\)"):
        loader(path)


def test_activitynet_ground_truth_segment_must_be_numbers(tmp_path):
    js = tmp_path / "gt.json"
    js.write_text(
        '{"database": {"v1": {"subset": "test", "duration": 5, '
        '"annotations": [{"segment": "12", "label": "a"}]}}}'
    )
    with pytest.raises(ValueError, match=r"video v1: annotation 0 is malformed \(segment is '12'"):
        load_activitynet_json(js)
