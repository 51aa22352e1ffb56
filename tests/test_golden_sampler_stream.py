"""The reference's batch stream, replayed exactly (golden `sampler_stream/`).

A case's `meta.json` names its annotations (`annotations`: `thumos14` when absent,
`activitynet12`) and train subset. The stream is built the way the pipeline builds it: a videos
table as ingestion writes it (snippet counts, `usable`, `all_zero`), the snippet-sampling
node's split with `snippet_sampling.dataset_class` = the annotations' dataset, then `split_pools`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from golden import golden_cases

from co2net_pipeline.data.annotations import load_shipped_annotations
from co2net_pipeline.method.sampler import ReferenceBatchStream, multi_hot, split_pools
from co2net_pipeline.pipelines.snippet_sampling.nodes import split_videos

CASES = golden_cases("sampler_stream")
TRAIN_SUBSETS = {"thumos14": "validation", "activitynet12": "training"}


def _videos_table(dataset: str, lengths: np.ndarray, zero_rows: np.ndarray):
    """The shipped annotations as ingestion's videos table, with these snippet counts and
    all-zero videos (`usable`: has snippets, as ingestion marks it)."""
    annotations = load_shipped_annotations(dataset)
    videos = annotations.videos.copy()
    videos["video_id"] = videos["video_id"].astype(str)
    videos["n_snippets"] = np.asarray(lengths, dtype=np.int64)
    videos["usable"] = videos["n_snippets"] > 0
    videos["all_zero"] = np.isin(np.arange(len(videos)), zero_rows)
    return videos, list(annotations.classlist)


def _stream(meta: dict, expected) -> tuple[ReferenceBatchStream, np.ndarray, np.ndarray]:
    """The stream of a case, the annotation row of each of its videos, and their labels."""
    dataset = meta.get("annotations", "thumos14")
    train_subset = meta.get("train_subset", TRAIN_SUBSETS[dataset])
    zero_rows = expected["zero_videos"] if "zero_videos" in expected else np.zeros(0, int)
    videos, classlist = _videos_table(dataset, expected["lengths"], zero_rows)
    test_subset = next(s for s in videos["subset"].unique() if s != train_subset)
    params = {"train_subset": train_subset, "test_subset": test_subset, "dataset_class": dataset}
    ids, fill, pairs = split_pools(videos, split_videos(videos, classlist, params))
    rows = videos.reset_index().set_index("video_id").loc[ids, "index"].to_numpy()
    labels = multi_hot(videos["labels"].iloc[rows], classlist)
    stream = ReferenceBatchStream(
        labels,
        videos["n_snippets"].to_numpy()[rows],
        seed=meta["seed"],
        batch_size=meta["batch_size"],
        n_similar=meta["n_similar"],
        max_seqlen=meta["max_seqlen"],
        video_ids=ids,
        fill=fill,
        pairs=pairs,
    )
    return stream, rows, labels


@pytest.mark.parametrize("case", CASES)
def test_golden_sampler_stream(case) -> None:
    meta = json.loads((case / "meta.json").read_text())
    expected = np.load(case / "expected.npz")
    stream, rows, labels = _stream(meta, expected)
    if "pool_sizes" in meta:
        assert [len(m) for m in stream.members] == meta["pool_sizes"]
    if "fill_pool_size" in meta:
        assert len(stream.fill) == meta["fill_pool_size"]
    for k in range(meta["n_iter"]):
        batch, snippets = stream.next_batch()
        np.testing.assert_array_equal(rows[batch], expected[f"videos_{k}"], err_msg=f"iter {k}")
        np.testing.assert_array_equal(snippets, expected[f"snippets_{k}"], err_msg=f"iter {k}")
        np.testing.assert_array_equal(labels[batch], expected[f"labels_{k}"], err_msg=f"iter {k}")
    if "video_names_iteration_0" in meta:
        first, _, _ = _stream(meta, expected)
        assert list(first.video_ids[first.next_batch()[0]]) == meta["video_names_iteration_0"]


def test_activitynet_pools_keep_short_videos_and_drop_all_zero_ones() -> None:
    """The original's ActivityNet class: a short video (<= 10 snippets) is in its classes'
    pair pools but not in the fill pool; an all-zero video of more than 10 snippets is in the
    fill pool but in no pair pool; an empty video (T = 0) is in neither."""
    lengths = np.full(7202, 60)
    lengths[[0, 1]] = [5, 0]
    meta = {"annotations": "activitynet12", "seed": 1, "batch_size": 10, "n_similar": 3}
    stream, rows, labels = _stream(
        {**meta, "max_seqlen": 60}, {"lengths": lengths, "zero_videos": [2]}
    )
    in_pairs = {int(rows[r]) for m in stream.members for r in m}
    in_fill = {int(rows[r]) for r in stream.fill}
    assert 0 in in_pairs and 0 not in in_fill
    assert 2 in in_fill and 2 not in in_pairs
    assert 1 not in in_pairs | in_fill
    thumos = {**meta, "annotations": "thumos14", "max_seqlen": 500}
    stream, rows, _ = _stream(thumos, {"lengths": np.full(412, 300), "zero_videos": [0]})
    # THUMOS14's class has no such filter: the train list is both pools
    assert {int(rows[r]) for m in stream.members for r in m} == {int(rows[r]) for r in stream.fill}


def test_reference_stream_skip_resumes_the_same_stream() -> None:
    annotations = load_shipped_annotations("thumos14")
    train = annotations.videos[annotations.videos["subset"] == "validation"]
    labels = multi_hot(train["labels"], annotations.classlist)
    lengths = np.arange(len(train)) % 700 + 1
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
    # a pair pool emptied by the masks counts too
    with pytest.raises(ValueError, match=r"classes \[0, 1\] have fewer"):
        ReferenceBatchStream(
            labels, [5, 6, 7], seed=0, batch_size=4, n_similar=1, pairs=[True, False, True]
        )
