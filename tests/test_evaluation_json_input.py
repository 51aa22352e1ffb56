"""`co2net evaluate` reads ActivityNet result JSON strictly: numbers must be JSON numbers."""

import json
from pathlib import Path

import pytest

from co2net_pipeline.reports.evaluation_files import load_predictions


def _write(tmp_path: Path, entry) -> Path:
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps({"results": {"vid_1": [{"label": "a", "score": 0.5, "segment": [1, 2]}, entry]}})
    )
    return path


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"label": "a", "score": 0.5, "segment": "12"}, r"segment is '12', not a list"),
        ({"label": "a", "score": True, "segment": [1, 2]}, r"score is True, not a number"),
        ({"label": "a", "score": "0.5", "segment": [1, 2]}, r"score is '0.5', not a number"),
        ({"label": "a", "score": 0.5, "segment": ["1", 2]}, r"segment start is '1'"),
        ({"label": "a", "score": 0.5, "segment": [1, 2, 3]}, r"not a list \[start, end\]"),
        ({"label": "a", "score": 0.5}, r"no 'segment'"),
        ([1, 2], r"entry is \[1, 2\], not an object"),
        ({"label": True, "score": 0.5, "segment": [1, 2]}, r"no usable label"),
    ],
)
def test_wrong_json_types_are_refused_naming_file_video_entry(tmp_path, entry, problem):
    with pytest.raises(ValueError, match=rf"p\.json: video vid_1: detection 1 .*{problem}"):
        load_predictions(_write(tmp_path, entry))


def test_numbers_still_read(tmp_path):
    table = load_predictions(_write(tmp_path, {"label": "a", "score": 1, "segment": [0.5, 3]}))
    assert table[["t_start", "t_end", "score"]].to_numpy().tolist() == [[1, 2, 0.5], [0.5, 3, 1]]


def test_deeply_nested_json_is_one_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(
        ValueError, match=r"deep\.json: not a readable JSON file \(nested too deeply\)"
    ) as info:
        load_predictions(path)
    assert "\n" not in str(info.value)
