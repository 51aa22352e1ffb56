"""The reference's batch stream, replayed exactly (golden `sampler_stream/`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from golden import golden_cases

from co2net_pipeline.data.annotations import load_shipped_annotations
from co2net_pipeline.method.sampler import ReferenceBatchStream

CASES = golden_cases("sampler_stream")


def _train_videos():
    """THUMOS14 train rows (subset 'validation') in annotation order and their multi-hot labels."""
    annotations = load_shipped_annotations("thumos14")
    videos = annotations.videos
    rows = np.flatnonzero((videos["subset"] == "validation").to_numpy())
    index = {name: c for c, name in enumerate(annotations.classlist)}
    labels = np.zeros((len(rows), len(annotations.classlist)), dtype=np.float32)
    for k, row in enumerate(rows):
        for label in videos["labels"].iloc[row]:
            labels[k, index[label]] = 1.0
    return videos, rows, labels


@pytest.mark.parametrize("case", CASES)
def test_golden_sampler_stream(case) -> None:
    meta = json.loads((case / "meta.json").read_text())
    expected = np.load(case / "expected.npz")
    videos, rows, labels = _train_videos()
    stream = ReferenceBatchStream(
        labels,
        expected["lengths"][rows],
        seed=meta["seed"],
        batch_size=meta["batch_size"],
        n_similar=meta["n_similar"],
        max_seqlen=meta["max_seqlen"],
    )
    for k in range(meta["n_iter"]):
        batch, snippets = stream.next_batch()
        np.testing.assert_array_equal(rows[batch], expected[f"videos_{k}"], err_msg=f"iter {k}")
        np.testing.assert_array_equal(snippets, expected[f"snippets_{k}"], err_msg=f"iter {k}")
        np.testing.assert_array_equal(labels[batch], expected[f"labels_{k}"], err_msg=f"iter {k}")
    if "video_names_iteration_0" in meta:
        first = ReferenceBatchStream(labels, expected["lengths"][rows], seed=meta["seed"])
        names = videos["video_id"].to_numpy()[rows[first.next_batch()[0]]]
        assert list(names) == meta["video_names_iteration_0"]


def test_reference_stream_skip_resumes_the_same_stream() -> None:
    _, rows, labels = _train_videos()
    lengths = np.arange(len(rows)) % 700 + 1
    whole = ReferenceBatchStream(labels, lengths, seed=5)
    batches = [whole.next_batch() for _ in range(4)]
    resumed = ReferenceBatchStream(labels, lengths, seed=5)
    resumed.skip(2)
    for rows_k, snippets_k in batches[2:]:
        got_rows, got_snippets = resumed.next_batch()
        np.testing.assert_array_equal(got_rows, rows_k)
        np.testing.assert_array_equal(got_snippets, snippets_k)


def test_reference_stream_refuses_a_class_with_one_video() -> None:
    labels = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    with pytest.raises(ValueError, match=r"classes \[1\] have fewer"):
        ReferenceBatchStream(labels, [5, 6, 7], seed=0, batch_size=4, n_similar=1)
