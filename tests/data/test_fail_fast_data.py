"""Data-layer user errors are one line naming the file / video and the problem (issue 14, low)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from data_helpers import write_json, write_npy_folder

from co2net_pipeline.data.annotations import load_activitynet_json
from co2net_pipeline.data.formats import open_feature_source
from co2net_pipeline.data.safe_npy import load_npy
from co2net_pipeline.data.validation import DataValidationError, validate_dataset


def _header_claiming(path, shape, dtype="<f4", payload=b"\0" * 64):
    """A .npy whose header claims `shape` but holds only `payload`."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload)
    return path


def test_npy_header_larger_than_the_file_is_an_error_not_a_memory_error(tmp_path):
    path = _header_claiming(tmp_path / "feat.npy", (10**11, 16))
    with pytest.raises(ValueError) as info:
        load_npy(path)
    text = str(info.value)
    assert text.startswith(
        f"{path}: not a readable .npy file (header says shape (100000000000, 16) of float32, "
        "6,400,000,000,000 bytes, but the file holds 64 bytes of data"
    )
    assert "\n" not in text


def test_npy_with_a_matching_header_still_loads(tmp_path):
    np.save(tmp_path / "ok.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(load_npy(tmp_path / "ok.npy").ravel(), np.arange(12))


def test_width_mismatch_blames_the_odd_video_even_when_it_is_read_first(tmp_path, tiny):
    annotations, features = tiny
    features["vid_a"] = features["vid_a"][:, :4]  # the first video is the odd one
    write_npy_folder(tmp_path / "feats", features)
    source, ann = open_feature_source(
        tmp_path / "feats", "npy-folder", write_json(tmp_path / "a.json", annotations)
    )
    with pytest.raises(DataValidationError) as info:
        validate_dataset(source, ann, {})
    assert (
        "vid_a.npy: video vid_a: features have 4 columns, expected 6 (the width of 3 of 4"
        in str(info.value)
    )


@pytest.mark.parametrize("value", ["1" + "0" * 400, "1e400"], ids=["int-10^400", "float-1e400"])
def test_ground_truth_json_with_an_out_of_range_time_is_one_line(tmp_path, value):
    path = tmp_path / "gt.json"
    path.write_text(
        '{"database": {"v": {"subset": "validation", "duration": 10, "annotations": '
        f'[{{"label": "A", "segment": [1, {value}]}}]}}}}}}'
    )
    json.loads(path.read_text())  # valid JSON: the problem is the value
    with pytest.raises(ValueError, match=rf"^{path}: video v: annotation 0 ") as info:
        load_activitynet_json(path)
    assert "\n" not in str(info.value)
