"""Batch composition and snippet sampling for training (spec §4.1).

A training run is driven by a *sampling plan*: one row per (iteration, slot) naming the video
and a `snippet_seed` from which that video's snippet indices are drawn. The plan is a plain
table, so a run can be inspected, stored and replayed exactly (`batch_snippet_indices`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

PLAN_COLUMNS = ("iteration", "slot", "video_id", "snippet_seed")
SAMPLINGS = ("random", "uniform")
# The original's dataset classes (`snippet_sampling.dataset_class`): THUMOS14's `SampleDataset`
# and ActivityNet1.2's `AntSampleDataset`; the class decides the pair pools and which short
# videos leave the train and test lists.
DATASET_CLASSES = ("thumos14", "activitynet12")
# Videos with fewer snippets leave the train and test lists: `AntSampleDataset` drops those of
# <= 10 snippets; `SampleDataset` has no filter (a video without snippets has nothing to sample).
LIST_MIN_SNIPPETS = {"thumos14": 1, "activitynet12": 11}
# Plans are drawn in blocks of this many iterations, block b from the stream (seed, b), so a
# plan is a prefix of any longer plan with the same seed (a run can be extended and resumed).
_PLAN_BLOCK = 1024


def _check_lengths(length: int, max_seqlen: int) -> None:
    if int(length) < 1:
        raise ValueError(f"cannot sample snippets from a video of length {length}")
    if int(max_seqlen) < 1:
        raise ValueError(f"max_seqlen must be >= 1, got {max_seqlen}")


def stratified_snippet_indices(
    length: int, max_seqlen: int, rng: np.random.Generator, *, closed_upper: bool = True
) -> np.ndarray:
    """Stratified random snippet indices (reference `random_perturb`): (max_seqlen,) int64.

    For L = length and T = max_seqlen: L == T gives 0..T-1. Otherwise bin i starts at
    b_i = floor(i*L/T); for i < T-1 an index is drawn uniformly from [b_i, b_{i+1}] when the
    bins differ, else b_i; the last index is drawn from [b_{T-1}, L-1]. The result is
    non-decreasing and covers the whole video; for L < T snippets repeat (up-sampling by
    duplication).

    closed_upper: reference quirk: the draw for bin i uses the CLOSED range [b_i, b_{i+1}],
        which includes the next bin's first snippet (so neighbouring draws may coincide).
        False draws from the half-open bin [b_i, b_{i+1}) (TSN-style segment sampling; the
        paper does not describe the sampler).
    """
    _check_lengths(length, max_seqlen)
    length, max_seqlen = int(length), int(max_seqlen)
    if length == max_seqlen:
        return np.arange(max_seqlen, dtype=np.int64)
    starts, upper = _stratified_bins(length, max_seqlen, closed_upper)
    # rng.integers with low == high + 1 spans one value, so equal bins give b_i without a draw.
    return rng.integers(starts, upper + 1, dtype=np.int64)


def _stratified_bins(
    length: int, max_seqlen: int, closed_upper: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """First and last snippet (inclusive) each of the max_seqlen indices may take: (T,), (T,)."""
    # Same float64 expression as the reference, so bin boundaries agree exactly.
    starts = np.floor(np.arange(max_seqlen) * length / max_seqlen).astype(np.int64)
    upper = np.empty_like(starts)
    upper[:-1] = starts[1:] if closed_upper else np.maximum(starts[1:] - 1, starts[:-1])
    upper[-1] = length - 1
    return starts, upper


def uniform_snippet_indices(length: int, max_seqlen: int) -> np.ndarray:
    """Deterministic uniform sampling floor(i*L/T) (reference `uniform_sampling`, unused by
    the reference training): (max_seqlen,) int64."""
    _check_lengths(length, max_seqlen)
    length, max_seqlen = int(length), int(max_seqlen)
    if length == max_seqlen:
        return np.arange(max_seqlen, dtype=np.int64)
    return np.floor(np.arange(max_seqlen) * length / max_seqlen).astype(np.int64)


def snippet_indices(
    length: int, max_seqlen: int, seed: int, sampling: str = "random", *, closed_upper: bool = True
) -> np.ndarray:
    """Snippet indices of one plan row: (max_seqlen,) int64."""
    if sampling == "random":
        return stratified_snippet_indices(
            length, max_seqlen, np.random.default_rng(int(seed)), closed_upper=closed_upper
        )
    if sampling == "uniform":
        return uniform_snippet_indices(length, max_seqlen)
    raise ValueError(f"sampling={sampling!r}: expected one of {SAMPLINGS}")


def multi_hot(labels: Sequence[Sequence[str]], classlist: Sequence[str]) -> np.ndarray:
    """(N, C) float32 weak labels from N lists of class names (the videos' `labels` column)."""
    index = {name: i for i, name in enumerate(classlist)}
    out = np.zeros((len(labels), len(classlist)), dtype=np.float32)
    for row, names in enumerate(labels):  # loop over videos
        for name in names:
            out[row, index[name]] = 1.0
    return out


def split_seed(params: Mapping[str, object]) -> int:
    """Seed of the held-out split: `snippet_sampling.split_seed`, else `seed` (the plan's)."""
    value = params.get("split_seed")
    return int(params["seed"] if value is None else value)


def class_video_index(labels: np.ndarray) -> list[np.ndarray]:
    """Per class, the row numbers of the videos carrying it (reference `classwiseidx`)."""
    labels = np.asarray(labels)
    return [np.flatnonzero(labels[:, c] > 0) for c in range(labels.shape[1])]


def batch_pools(
    labels: np.ndarray,
    fill: Sequence[bool] | np.ndarray | None = None,
    pairs: Sequence[bool] | np.ndarray | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Per class, the rows of its pair pool, and the rows of the fill pool.

    labels: (N, C) multi-hot of every video a pool may hold, in annotation order; fill, pairs:
    (N,) masks of the fill pool (the train list) and of the videos the class-pair pools draw
    from; None = every video (THUMOS14's `SampleDataset`: both are the train list). The
    original's ActivityNet class (`AntSampleDataset`) builds its pair pools from every training
    video before it drops those of <= 10 snippets, leaving out all-zero videos, while its fill
    pool is the filtered list (`pair_pool_videos`).
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    fill_mask = np.ones(n, bool) if fill is None else np.asarray(fill, dtype=bool)
    pair_mask = np.ones(n, bool) if pairs is None else np.asarray(pairs, dtype=bool)
    if fill_mask.shape != (n,) or pair_mask.shape != (n,):
        raise ValueError(f"fill and pairs must be ({n},) masks over the {n} videos")
    members = [m[pair_mask[m]] for m in class_video_index(labels)]
    return members, np.flatnonzero(fill_mask)


def thin_pair_classes(
    labels: np.ndarray,
    fill: Sequence[bool] | np.ndarray | None = None,
    pairs: Sequence[bool] | np.ndarray | None = None,
) -> dict[int, int]:
    """{class index: pair-pool size} of the classes whose pair pool holds fewer than 2 videos
    (`batch_pools`): the reference's stream draws every class and crashes on those."""
    members, _ = batch_pools(labels, fill, pairs)
    return {c: len(m) for c, m in enumerate(members) if len(m) < 2}


def _check_dataset_class(dataset_class: str) -> None:
    if dataset_class not in DATASET_CLASSES:
        raise ValueError(
            f"snippet_sampling.dataset_class={dataset_class!r}: expected one of {DATASET_CLASSES}"
        )


def listed_videos(videos: pd.DataFrame, dataset_class: str = "thumos14") -> pd.Series:
    """(N,) bool mask of the videos the train and test lists may hold, by the original's
    dataset class alone (`LIST_MIN_SNIPPETS`), whatever the file's name: "thumos14" every video
    with snippets, "activitynet12" those of more than 10. A table without `n_snippets` (made by
    hand) falls back on its `usable` column, for "thumos14" only."""
    _check_dataset_class(dataset_class)
    if "n_snippets" in videos:
        return videos["n_snippets"] >= LIST_MIN_SNIPPETS[dataset_class]
    if dataset_class != "thumos14":
        raise ValueError(
            f"snippet_sampling.dataset_class={dataset_class}: the videos table has no n_snippets"
        )
    return videos["usable"].astype(bool) if "usable" in videos else pd.Series(True, videos.index)


def pools_problem(videos: pd.DataFrame, dataset_class: str) -> str | None:
    """Why this videos table cannot give the dataset class's pair pools, None when it can: the
    "activitynet12" pools leave out all-zero videos, flagged by ingestion since issue 20 (a
    table ingested before has no `all_zero` column)."""
    if dataset_class != "activitynet12" or "all_zero" in videos:
        return None
    return (
        "snippet_sampling.dataset_class=activitynet12: the videos table has no `all_zero` "
        "column (ingested before all-zero videos were flagged), so the class-pair pools cannot "
        "leave them out as the original does; re-ingest the feature store: kedro run "
        "--pipelines=feature_ingestion (any run that starts with feature_ingestion redoes it: "
        "its fingerprint check finds the store out of date)"
    )


def pair_pool_videos(
    videos: pd.DataFrame,
    train_ids: Sequence[str],
    train_subset: str,
    dataset_class: str = "thumos14",
) -> list[str]:
    """The videos the class-pair pools draw from, in table (annotation) order.

    videos: the ingested table (video_id, subset, n_snippets, usable, all_zero); train_ids: the
    train list (the fill pool). dataset_class: which original dataset class to follow:
    "thumos14" (`SampleDataset`): the train list itself.
    "activitynet12" (`AntSampleDataset`): every video of `train_subset` that is not held out,
    including those of <= 10 snippets the train list drops (the original builds its pools
    before filtering), except videos with no snippets or all-zero features (the original
    skips features that sum to 0). A table without `all_zero` is a ValueError (`pools_problem`).
    """
    _check_dataset_class(dataset_class)
    if dataset_class == "thumos14":
        return [str(v) for v in train_ids]
    if problem := pools_problem(videos, dataset_class):
        raise ValueError(problem)
    table = videos[videos["subset"] == train_subset]
    listed = listed_videos(table, dataset_class)
    held_out = set(table.loc[listed, "video_id"]) - set(train_ids)
    keep = (table["n_snippets"] > 0) & ~table["video_id"].isin(held_out)
    keep &= ~table["all_zero"].astype(bool)
    return table.loc[keep, "video_id"].astype(str).tolist()


def split_pools(
    videos: pd.DataFrame, data_split: Mapping[str, Sequence[str]]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The videos batches draw from (the train list and the pair pools' videos) in table order,
    with the fill (train list) and pair-pool masks over them. A split without "pairs" (written
    before pools were recorded) pairs the train list."""
    train = set(data_split["train"])
    pairs = set(data_split.get("pairs", data_split["train"]))
    ids = videos["video_id"].astype(str)
    ids = ids[ids.isin(train | pairs)]
    return ids.tolist(), ids.isin(train).to_numpy(), ids.isin(pairs).to_numpy()


def _check_batch(n_videos: int, labels: np.ndarray, batch_size: int, n_similar: int) -> None:
    if labels.ndim != 2 or labels.shape[0] != n_videos:
        raise ValueError(
            f"labels must be (N, C) with N = {n_videos} videos, got shape {labels.shape}"
        )
    if batch_size < 2 * n_similar:
        raise ValueError(
            f"batch_size={batch_size} cannot hold n_similar={n_similar} pairs "
            f"({2 * n_similar} slots)"
        )


def make_sampling_plan(
    video_ids: Sequence[str],
    labels: np.ndarray,
    n_iterations: int,
    batch_size: int = 10,
    n_similar: int = 3,
    seed: int = 3552,
    *,
    fill: Sequence[bool] | np.ndarray | None = None,
    pairs: Sequence[bool] | np.ndarray | None = None,
) -> pd.DataFrame:
    """The per-iteration batch composition of a training run (reference `load_data`).

    video_ids: N train videos; labels: (N, C) multi-hot. Per iteration, slots 0..2*n_similar-1
    hold n_similar class-sharing pairs: a class drawn uniformly WITH replacement (the same
    class may be drawn twice), then 2 distinct videos of that class (without replacement);
    the remaining slots are train videos drawn uniformly WITH replacement.

    Classes with fewer than 2 train videos cannot be drawn (the reference would crash on
    them: `np.random.choice(..., replace=False)` of 2 out of < 2); the pair class is drawn
    uniformly among the eligible classes. The reference draws with NumPy's legacy global
    RNG; here seeded `np.random.Generator` streams are used, so the distribution is the same
    but the exact batches differ. A plan is a prefix of any longer plan with the same
    arguments (so a finished run can be extended and resumed). fill, pairs: which of the
    videos the fill and the pair pools hold (`batch_pools`; None = all).

    Returns a DataFrame with columns iteration, slot (int64), video_id (str) and
    snippet_seed (int64, seeds the snippet draw of that row), sorted by iteration and slot.
    """
    video_ids = [str(v) for v in video_ids]
    labels = np.asarray(labels)
    _check_batch(len(video_ids), labels, batch_size, n_similar)
    if n_iterations < 0:
        raise ValueError(f"n_iterations must be >= 0, got {n_iterations}")
    pools, fill_rows = batch_pools(labels, fill, pairs)
    if not fill_rows.size:
        raise ValueError("make_sampling_plan: no train videos")
    n_fill = batch_size - 2 * n_similar
    members = [m for m in pools if len(m) >= 2]
    if n_similar > 0 and not members:
        raise ValueError("make_sampling_plan: no class has 2 or more train videos")
    sizes = np.array([len(m) for m in members], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    flat = np.concatenate(members) if members else np.zeros(0, dtype=np.int64)
    n_blocks = -(-n_iterations // _PLAN_BLOCK)
    rows = np.empty((n_blocks * _PLAN_BLOCK, batch_size), dtype=np.int64)
    seeds = np.empty((n_blocks * _PLAN_BLOCK, batch_size), dtype=np.int64)
    for block in range(n_blocks):  # fixed-size blocks, each from its own stream
        rng = np.random.default_rng((seed, block))
        part = slice(block * _PLAN_BLOCK, (block + 1) * _PLAN_BLOCK)
        if n_similar > 0:
            cls = rng.integers(0, len(members), size=(_PLAN_BLOCK, n_similar))
            n_c = sizes[cls]
            # Two distinct members: first uniform, second uniform over the others.
            first = rng.integers(0, n_c)
            second = rng.integers(0, n_c - 1)
            second = second + (second >= first)
            rows[part, 0 : 2 * n_similar : 2] = flat[offsets[cls] + first]
            rows[part, 1 : 2 * n_similar : 2] = flat[offsets[cls] + second]
        rows[part, 2 * n_similar :] = fill_rows[
            rng.integers(0, len(fill_rows), size=(_PLAN_BLOCK, n_fill))
        ]
        seeds[part] = rng.integers(
            0, np.iinfo(np.int64).max, size=(_PLAN_BLOCK, batch_size), dtype=np.int64
        )
    rows, seeds = rows[:n_iterations], seeds[:n_iterations]
    return pd.DataFrame(
        {
            "iteration": np.repeat(np.arange(n_iterations, dtype=np.int64), batch_size),
            "slot": np.tile(np.arange(batch_size, dtype=np.int64), n_iterations),
            "video_id": np.asarray(video_ids, dtype=object)[rows.ravel()],
            "snippet_seed": seeds.ravel(),
        }
    )


def subset_problem(
    subsets: Iterable[str], train_subset: str, test_subset: str, where: str
) -> str | None:
    """One line naming the train / test subsets that `where` (the annotations) lacks and the
    subsets it has, with the override that would fix it; None when both are there."""
    present = sorted({str(s) for s in subsets})
    wanted = {"train_subset": train_subset, "test_subset": test_subset}
    missing = {key: name for key, name in wanted.items() if name not in present}
    if not missing:
        return None
    named = ", ".join(f"snippet_sampling.{key}={name!r}" for key, name in missing.items())
    what = "subsets" if len(missing) > 1 else "subset"
    line = f"{named}: no such {what} in {where} (its subsets: {', '.join(present) or 'none'})"
    tests = [s for s in present if "test" in s.lower()]
    trains = [s for s in present if s not in tests]
    if len(tests) == 1 and len(trains) == 1:
        return line + (
            f'; kedro run --params "snippet_sampling.train_subset={trains[0]},'
            f'snippet_sampling.test_subset={tests[0]}"'
        )
    if where.lower().endswith(".csv") and present == ["all"]:
        return line + "; give the CSV a `subset` column (e.g. train / test) to split it"
    return line + "; set snippet_sampling.train_subset and test_subset to two of them"


def split_heldout(
    video_ids: Sequence[str],
    labels: np.ndarray,
    fraction: float,
    seed: int = 0,
    min_train_per_class: int = 2,
) -> tuple[list[str], list[str]]:
    """Split train videos into (train, held-out) for model selection without the test set.

    Stratified by each video's rarest class: about `fraction` of each stratum is held out,
    but a video is only moved when every class it carries keeps at least
    `min_train_per_class` train videos (so every class can still form a pair). Both lists
    keep the input order. The reference has no held-out split (it selects on the test set).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"held-out fraction must be in [0, 1), got {fraction}")
    video_ids = [str(v) for v in video_ids]
    labels = np.asarray(labels) > 0
    if labels.shape[0] != len(video_ids):
        raise ValueError(f"labels have {labels.shape[0]} rows for {len(video_ids)} videos")
    rng = np.random.default_rng(seed)
    class_counts = labels.sum(axis=0)
    # Rarest class first, so rare classes are protected before common ones take their quota.
    masked = np.where(labels, class_counts[None, :], np.iinfo(np.int64).max)
    stratum = np.where(labels.any(axis=1), masked.argmin(axis=1), -1)
    train_counts = class_counts.astype(np.int64).copy()
    held = np.zeros(len(video_ids), dtype=bool)
    for s in np.unique(stratum):
        members = rng.permutation(np.flatnonzero(stratum == s))
        quota = int(round(fraction * len(members)))
        for v in members:  # loop over videos
            if quota == 0:
                break
            if np.all(train_counts[labels[v]] - 1 >= min_train_per_class):
                held[v] = True
                train_counts[labels[v]] -= 1
                quota -= 1
    ids = np.asarray(video_ids, dtype=object)
    return list(ids[~held]), list(ids[held])


def batch_snippet_indices(
    lengths: Sequence[int],
    seeds: Sequence[int] | np.ndarray,
    max_seqlen: int,
    sampling: str = "random",
    *,
    closed_upper: bool = True,
) -> np.ndarray:
    """Snippet indices of one iteration's B plan rows: (B, max_seqlen) int64."""
    if sampling not in ("random", "uniform"):
        raise ValueError(f"batch sampling={sampling!r}: expected 'random' or 'uniform'")
    return np.stack(
        [
            snippet_indices(length, max_seqlen, int(seed), sampling, closed_upper=closed_upper)
            for length, seed in zip(lengths, seeds, strict=True)
        ]
    )


RNG_STREAMS = ("plan", "original")


class ReferenceBatchStream:
    """The reference's own batch stream (`load_data` + `random_perturb`), replayed draw for
    draw from NumPy's legacy generator seeded as the reference's `setup_seed` does.

    labels: (N, C) multi-hot of the N videos the pools hold, in annotation order; lengths:
    (N,) their snippet counts; video_ids: their names (for plans); fill, pairs: the fill and
    pair pools (`batch_pools`; None = all N, THUMOS14's class). Each `next_batch()` draws, in
    the reference's order: `choice(C, n_similar)` pair classes (with replacement, every class),
    for each `choice(n_c, 2, replace=False)` of its pool (which shuffles the whole pool, so the
    stream depends on each pool's size), `choice(n_fill, B - 2 n_similar)` fill videos, then
    each video's `random_perturb`. `randint(0, sizes)` with an array of sizes consumes the
    legacy stream as the reference's one `choice(range(lo, hi + 1))` per snippet does, so a
    video costs one call. The stream is sequential: `skip` replays batches for a resumed run.
    """

    def __init__(
        self,
        labels: np.ndarray,
        lengths: Sequence[int] | np.ndarray,
        seed: int,
        batch_size: int = 10,
        n_similar: int = 3,
        max_seqlen: int = 500,
        video_ids: Sequence[str] | None = None,
        *,
        fill: Sequence[bool] | np.ndarray | None = None,
        pairs: Sequence[bool] | np.ndarray | None = None,
    ) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        ids = range(len(self.lengths)) if video_ids is None else video_ids
        self.video_ids = np.asarray([str(v) for v in ids], dtype=object)
        _check_batch(len(self.lengths), np.asarray(labels), batch_size, n_similar)
        self.members, self.fill = batch_pools(labels, fill, pairs)
        drawn = np.concatenate([self.fill, *self.members]).astype(np.int64)
        if not self.fill.size or int(self.lengths[drawn].min()) < 1:
            raise ValueError("ReferenceBatchStream: needs train videos of length >= 1")
        thin = sorted(thin_pair_classes(labels, fill, pairs))
        if n_similar > 0 and thin:
            # The reference would crash on drawing such a class (choice of 2 out of < 2).
            raise ValueError(
                f"snippet_sampling.rng='original' needs >= 2 train videos in every class; "
                f"classes {thin} have fewer (use rng='plan')"
            )
        self.batch_size, self.n_similar, self.max_seqlen = batch_size, n_similar, max_seqlen
        self.random = np.random.RandomState(int(seed) % 2**32)
        self.drawn = 0

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows (B,) into the N videos and snippet indices (B, max_seqlen) of the next batch."""
        rows: list[int] = []
        for c in self.random.choice(len(self.members), size=self.n_similar):
            pair = self.random.choice(len(self.members[c]), size=2, replace=False)
            rows.extend(int(self.members[c][k]) for k in pair)
        fill = self.random.choice(len(self.fill), size=self.batch_size - 2 * self.n_similar)
        rows.extend(int(self.fill[r]) for r in fill)
        snippets = np.stack([self._perturb(int(self.lengths[r])) for r in rows])
        self.drawn += 1
        return np.asarray(rows, dtype=np.int64), snippets

    def skip(self, n_batches: int) -> None:
        """Draw and discard n batches (a resumed run continues the same stream)."""
        for _ in range(int(n_batches)):
            self.next_batch()

    def _perturb(self, length: int) -> np.ndarray:
        if length == self.max_seqlen:
            return np.arange(length, dtype=np.int64)
        starts, upper = _stratified_bins(length, self.max_seqlen)
        drawn = upper > starts
        out = starts.copy()
        out[drawn] += self.random.randint(0, (upper - starts + 1)[drawn])
        return out


def reference_sampling_plan(
    video_ids: Sequence[str],
    labels: np.ndarray,
    lengths: Sequence[int] | np.ndarray,
    n_iterations: int,
    batch_size: int = 10,
    n_similar: int = 3,
    seed: int = 3552,
    max_seqlen: int = 500,
    *,
    fill: Sequence[bool] | np.ndarray | None = None,
    pairs: Sequence[bool] | np.ndarray | None = None,
) -> pd.DataFrame:
    """The plan of `ReferenceBatchStream` (`snippet_sampling.rng: original`): the same columns
    as `make_sampling_plan`, with `snippet_seed` = -1 (the snippets come from the stream, which
    training replays from the same seed)."""
    stream = ReferenceBatchStream(
        labels, lengths, seed, batch_size, n_similar, max_seqlen, video_ids, fill=fill, pairs=pairs
    )
    rows = np.stack([stream.next_batch()[0] for _ in range(n_iterations)]).reshape(-1)
    return pd.DataFrame(
        {
            "iteration": np.repeat(np.arange(n_iterations, dtype=np.int64), batch_size),
            "slot": np.tile(np.arange(batch_size, dtype=np.int64), n_iterations),
            "video_id": stream.video_ids[rows] if n_iterations else np.array([], dtype=object),
            "snippet_seed": np.full(n_iterations * batch_size, -1, dtype=np.int64),
        }
    )
