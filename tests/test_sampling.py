"""Batch composition and snippet sampling (spec §4.1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from co2net_pipeline.method.sampler import (
    batch_snippet_indices,
    class_video_index,
    make_sampling_plan,
    multi_hot,
    snippet_indices,
    split_heldout,
    stratified_snippet_indices,
    uniform_snippet_indices,
)


def _reference_random_perturb(length: int, num_segments: int, rng: np.random.Generator):
    """Element-by-element transcription of the reference loop (spec §4.1), for comparison."""
    if num_segments == length:
        return np.arange(num_segments)
    samples = np.arange(num_segments) * length / num_segments
    for i in range(num_segments):
        if i < num_segments - 1:
            if int(samples[i]) != int(samples[i + 1]):
                samples[i] = rng.choice(range(int(samples[i]), int(samples[i + 1]) + 1))
            else:
                samples[i] = int(samples[i])
        elif int(samples[i]) < length - 1:
            samples[i] = rng.choice(range(int(samples[i]), length))
        else:
            samples[i] = int(samples[i])
    return samples.astype(int)


# --- snippet indices ----------------------------------------------------------------------------


def test_equal_length_gives_arange():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(stratified_snippet_indices(7, 7, rng), np.arange(7))
    np.testing.assert_array_equal(uniform_snippet_indices(7, 7), np.arange(7))


@pytest.mark.parametrize("length", [1, 2, 3, 13, 60, 499, 501, 1000, 4711])
@pytest.mark.parametrize("t", [1, 5, 60, 500])
def test_indices_non_decreasing_and_inside_video(length, t):
    rng = np.random.default_rng(length * 1000 + t)
    for _ in range(5):
        idx = stratified_snippet_indices(length, t, rng)
        assert idx.shape == (t,) and idx.dtype == np.int64
        assert idx.min() >= 0 and idx.max() <= length - 1
        assert np.all(np.diff(idx) >= 0)


def test_each_index_inside_its_closed_bin():
    length, t = 1000, 500
    starts = np.floor(np.arange(t) * length / t).astype(int)
    upper = np.append(starts[1:], length - 1)
    rng = np.random.default_rng(1)
    for _ in range(20):
        idx = stratified_snippet_indices(length, t, rng)
        assert np.all(idx >= starts) and np.all(idx <= upper)


def test_closed_range_quirk_reaches_next_bin_start():
    """Reference: bin i draws from [b_i, b_{i+1}], so index b_{i+1} occurs at position i."""
    rng = np.random.default_rng(2)
    draws = np.stack([stratified_snippet_indices(10, 5, rng) for _ in range(400)])
    assert (draws[:, 0] == 2).any()  # b_1 = 2 reached by position 0
    half_open = np.stack(
        [stratified_snippet_indices(10, 5, rng, closed_upper=False) for _ in range(400)]
    )
    assert set(np.unique(half_open[:, 0])) == {0, 1}
    assert np.all(half_open[:, :-1] < np.floor(np.arange(1, 5) * 10 / 5))


@pytest.mark.parametrize("length,t", [(1000, 500), (37, 10), (523, 320), (61, 60)])
def test_every_snippet_reachable(length, t):
    rng = np.random.default_rng(3)
    seen = np.zeros(length, dtype=bool)
    for _ in range(300):
        seen[stratified_snippet_indices(length, t, rng)] = True
    assert seen.all()


def test_distribution_matches_reference_loop():
    """Same per-position value frequencies as the reference's element loop."""
    length, t, n = 23, 7, 4000
    rng = np.random.default_rng(4)
    ours = np.stack([stratified_snippet_indices(length, t, rng) for _ in range(n)])
    ref = np.stack([_reference_random_perturb(length, t, rng) for _ in range(n)])
    for pos in range(t):
        values = np.union1d(ours[:, pos], ref[:, pos])
        assert set(ours[:, pos]) == set(ref[:, pos])
        f_ours = np.array([(ours[:, pos] == v).mean() for v in values])
        f_ref = np.array([(ref[:, pos] == v).mean() for v in values])
        assert np.abs(f_ours - f_ref).max() < 0.05


def test_short_video_duplicates_snippets():
    rng = np.random.default_rng(5)
    idx = stratified_snippet_indices(3, 10, rng)
    assert idx.shape == (10,)
    assert len(np.unique(idx)) <= 3
    assert np.all(np.diff(idx) >= 0)
    np.testing.assert_array_equal(stratified_snippet_indices(1, 4, rng), np.zeros(4))


def test_uniform_indices():
    np.testing.assert_array_equal(uniform_snippet_indices(10, 4), [0, 2, 5, 7])
    np.testing.assert_array_equal(uniform_snippet_indices(2, 5), [0, 0, 0, 1, 1])


def test_bad_lengths():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="length 0"):
        stratified_snippet_indices(0, 5, rng)
    with pytest.raises(ValueError, match="max_seqlen"):
        stratified_snippet_indices(5, 0, rng)
    with pytest.raises(ValueError, match="sampling"):
        snippet_indices(5, 3, 0, "crop")


# --- sampling plan ---------------------------------------------------------------------------------


def _dataset(n=40, c=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, c), dtype=np.float32)
    labels[np.arange(n), rng.integers(0, c - 1, n)] = 1  # class c-1 left for the singleton
    extra = rng.random((n, c - 1)) < 0.1
    labels[:, : c - 1][extra] = 1
    labels[0, c - 1] = 1  # class c-1 has a single video: it cannot form a pair
    ids = [f"video_{i:04d}" for i in range(n)]
    return ids, labels


def test_plan_layout_and_dtypes():
    ids, labels = _dataset()
    plan = make_sampling_plan(ids, labels, n_iterations=50, batch_size=10, n_similar=3, seed=1)
    assert list(plan.columns) == ["iteration", "slot", "video_id", "snippet_seed"]
    assert len(plan) == 500
    assert plan["iteration"].dtype == np.int64 and plan["slot"].dtype == np.int64
    assert plan["snippet_seed"].dtype == np.int64
    assert (plan["snippet_seed"] >= 0).all()
    np.testing.assert_array_equal(plan["iteration"], np.repeat(np.arange(50), 10))
    np.testing.assert_array_equal(plan["slot"], np.tile(np.arange(10), 50))
    assert set(plan["video_id"]) <= set(ids)


def test_pairs_share_a_class_and_are_distinct():
    ids, labels = _dataset()
    row_of = {v: i for i, v in enumerate(ids)}
    plan = make_sampling_plan(ids, labels, n_iterations=300, seed=2)
    vids = plan["video_id"].to_numpy().reshape(300, 10)
    singleton_only = {ids[i] for i in range(len(ids)) if labels[i, :-1].sum() == 0}
    for row in vids:
        for p in range(3):
            a, b = row_of[row[2 * p]], row_of[row[2 * p + 1]]
            assert a != b
            shared = labels[a] * labels[b]
            assert shared[:-1].sum() >= 1  # the singleton class never forms a pair
        assert not singleton_only & set(row[:6])


def test_pair_classes_uniform_and_fill_covers_all_videos():
    n, c, iters = 30, 3, 3000
    ids = [f"v{i}" for i in range(n)]
    labels = np.eye(c)[np.arange(n) % c]  # one class per video, 10 videos each
    plan = make_sampling_plan(ids, labels, n_iterations=iters, seed=4)
    rows = np.array([int(v[1:]) for v in plan["video_id"]]).reshape(iters, 10)
    assert set(rows[:, 6:].ravel()) == set(range(n))  # fill: uniform with replacement
    pair_class = rows[:, 0:6:2] % c
    np.testing.assert_array_equal(pair_class, rows[:, 1:6:2] % c)
    freq = np.bincount(pair_class.ravel(), minlength=c) / pair_class.size
    assert np.abs(freq - 1 / c).max() < 0.03
    # classes are drawn with replacement: some iterations use one class for two pairs
    assert (pair_class[:, 0] == pair_class[:, 1]).any()


def test_plan_replay_determinism():
    ids, labels = _dataset()
    a = make_sampling_plan(ids, labels, 20, seed=7)
    b = make_sampling_plan(ids, labels, 20, seed=7)
    c = make_sampling_plan(ids, labels, 20, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert len(make_sampling_plan(ids, labels, 0, seed=7)) == 0


def test_plan_is_a_prefix_of_longer_plans():
    ids, labels = _dataset()
    short = make_sampling_plan(ids, labels, 5, seed=3)
    long = make_sampling_plan(ids, labels, 2500, seed=3)  # spans several draw blocks
    pd.testing.assert_frame_equal(short, long.iloc[:50])
    middle = make_sampling_plan(ids, labels, 1500, seed=3)
    pd.testing.assert_frame_equal(middle, long.iloc[:15000])


def test_plan_errors():
    ids, labels = _dataset()
    with pytest.raises(ValueError, match="cannot hold"):
        make_sampling_plan(ids, labels, 5, batch_size=4, n_similar=3)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        make_sampling_plan(ids[:-1], labels, 5)
    with pytest.raises(ValueError, match="2 or more"):
        make_sampling_plan(ids[:3], np.eye(3, 3), 5)


def test_class_video_index():
    labels = np.array([[1, 0], [1, 1], [0, 1]])
    idx = class_video_index(labels)
    np.testing.assert_array_equal(idx[0], [0, 1])
    np.testing.assert_array_equal(idx[1], [1, 2])


# --- held-out split -------------------------------------------------------------------------------


def test_split_heldout_keeps_two_train_videos_per_class():
    ids, labels = _dataset(n=60, c=8, seed=9)
    train, held = split_heldout(ids, labels, 0.3, seed=1)
    assert set(train) | set(held) == set(ids) and not set(train) & set(held)
    assert train == [v for v in ids if v in set(train)]  # input order kept
    row_of = {v: i for i, v in enumerate(ids)}
    train_counts = labels[[row_of[v] for v in train]].sum(axis=0)
    total_counts = labels.sum(axis=0)
    assert np.all(train_counts >= np.minimum(total_counts, 2))
    assert 0.15 * len(ids) <= len(held) <= 0.35 * len(ids)
    assert split_heldout(ids, labels, 0.3, seed=1) == (train, held)
    assert split_heldout(ids, labels, 0.0, seed=1) == (ids, [])
    with pytest.raises(ValueError, match="fraction"):
        split_heldout(ids, labels, 1.0)


# --- batch assembly ------------------------------------------------------------------------------


def test_batch_snippet_indices_replay_the_plan_exactly():
    """A batch is a pure function of its plan rows: each row's indices come from its own seed."""
    ids, labels = _dataset(n=12, c=3, seed=10)
    labels[:, :2] = 1
    rng = np.random.default_rng(10)
    lengths = {v: int(rng.integers(3, 80)) for v in ids}
    plan = make_sampling_plan(ids, labels, 3, seed=11)
    rows = plan[plan["iteration"] == 1]
    idx = batch_snippet_indices([lengths[v] for v in rows["video_id"]], rows["snippet_seed"], 16)
    assert idx.shape == (10, 16) and idx.dtype == np.int64
    for slot, (vid, seed) in enumerate(zip(rows["video_id"], rows["snippet_seed"], strict=True)):
        expected = stratified_snippet_indices(lengths[vid], 16, np.random.default_rng(seed))
        np.testing.assert_array_equal(idx[slot], expected)
    other = plan[plan["iteration"] == 2]
    assert not np.array_equal(
        idx,
        batch_snippet_indices([lengths[v] for v in other["video_id"]], other["snippet_seed"], 16),
    )
    vid0 = rows["video_id"].iloc[0]
    uniform = batch_snippet_indices([lengths[vid0]], [0], 16, "uniform")
    np.testing.assert_array_equal(uniform[0], uniform_snippet_indices(lengths[vid0], 16))
    with pytest.raises(ValueError, match="'all'"):
        batch_snippet_indices([5], [0], 4, "all")  # no longer a sampling option


def test_multi_hot_weak_labels():
    labels = multi_hot([["b"], ["a", "c"], []], ["a", "b", "c"])
    assert labels.dtype == np.float32
    np.testing.assert_array_equal(labels, [[0, 1, 0], [1, 0, 1], [0, 0, 0]])
    with pytest.raises(KeyError, match="d"):
        multi_hot([["d"]], ["a", "b", "c"])


def test_held_out_split_follows_split_seed_not_the_plan_seed():
    from co2net_pipeline.pipelines.snippet_sampling.nodes import split_videos

    classes = ["a", "b", "c"]
    videos = pd.DataFrame(
        {
            "video_id": [f"v{i:02d}" for i in range(30)] + ["t0"],
            "subset": ["validation"] * 30 + ["test"],
            "labels": [[classes[i % 3]] for i in range(30)] + [["a"]],
        }
    )
    base = {"train_subset": "validation", "test_subset": "test", "heldout_fraction": 0.3}
    fixed = [
        split_videos(videos, classes, {**base, "seed": s, "split_seed": 3552})["heldout"]
        for s in (1, 2)
    ]
    assert fixed[0] == fixed[1] and len(fixed[0]) > 0
    assert fixed[0] == split_videos(videos, classes, {**base, "seed": 3552})["heldout"]
    moved = [split_videos(videos, classes, {**base, "seed": s})["heldout"] for s in (1, 2)]
    assert moved[0] != moved[1]  # without split_seed the plan seed also draws the split


def test_plan_draws_pairs_and_fill_from_their_own_pools():
    """`rng: plan` with the ActivityNet pools: pair slots only from the pair pools (short
    videos included), fill slots only from the train list (all-zero videos included)."""
    labels = np.eye(2)[[0, 0, 0, 1, 1, 1, 1, 0]]
    ids = [f"v{i}" for i in range(8)]
    fill = np.array([1, 1, 0, 1, 1, 0, 1, 1], bool)  # v2, v5: short
    pairs = np.array([1, 1, 1, 1, 1, 1, 0, 0], bool)  # v6, v7: all zero
    plan = make_sampling_plan(
        ids, labels, 200, batch_size=6, n_similar=2, seed=4, fill=fill, pairs=pairs
    )
    paired = set(plan.loc[plan["slot"] < 4, "video_id"])
    filled = set(plan.loc[plan["slot"] >= 4, "video_id"])
    assert paired == {f"v{i}" for i in range(6)}
    assert filled == {"v0", "v1", "v3", "v4", "v6", "v7"}


def test_a_test_subset_without_usable_video_stops_the_run():
    """Issue 24: zero test videos ended FINISHED with mAP 0.0 at every tIoU, without a word."""
    from co2net_pipeline.data.errors import DataValidationError
    from co2net_pipeline.pipelines.snippet_sampling.nodes import split_videos

    videos = pd.DataFrame(
        {
            "video_id": ["a", "b", "t"],
            "subset": ["validation", "validation", "test"],
            "labels": [["x"], ["x"], ["x"]],
            "usable": [True, True, False],  # the only test video is too short
        }
    )
    params = {"train_subset": "validation", "test_subset": "test", "heldout_fraction": 0.0}
    with pytest.raises(DataValidationError) as info:
        split_videos(videos, ["x"], {**params, "seed": 1})
    assert str(info.value) == (
        "snippet_sampling.test_subset='test': no usable video to evaluate (all too short or "
        "without snippets; see the validation report)"
    )
