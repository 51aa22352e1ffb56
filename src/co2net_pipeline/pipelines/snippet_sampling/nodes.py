"""Training/test split and the replayable sampling plan (spec §4.1)."""

from __future__ import annotations

import logging

import pandas as pd

from co2net_pipeline.data.errors import DataValidationError
from co2net_pipeline.method.sampler import (
    listed_videos,
    make_sampling_plan,
    multi_hot,
    pair_pool_videos,
    pools_problem,
    reference_sampling_plan,
    split_heldout,
    split_pools,
    split_seed,
    subset_problem,
    thin_pair_classes,
)
from co2net_pipeline.params.schema import parse_group

logger = logging.getLogger(__name__)


def split_videos(videos: pd.DataFrame, classlist: list[str], params: dict) -> dict:
    """Train / held-out / test video ids, and the videos the class-pair pools draw from
    (`pairs`). `snippet_sampling.dataset_class` alone decides both, whatever the dataset's name:
    "thumos14" (the original's `SampleDataset`): every video with snippets is listed and the
    pairs are the train list; "activitynet12" (`AntSampleDataset`): videos of <= 10 snippets
    leave both lists, while the pairs hold every train-subset video with snippets that are not
    all zero, short ones included.

    The ground truth of the test subset is untouched. A missing subset, or an "activitynet12"
    run on a videos table ingested before `all_zero` existed, is a `DataValidationError` (one
    line); train and test sharing videos is a WARNING.
    """
    sampling = parse_group("snippet_sampling", params)
    dataset_class = sampling.dataset_class
    problem = subset_problem(
        videos["subset"], params["train_subset"], params["test_subset"], "the videos table"
    ) or pools_problem(videos, dataset_class)
    if problem:
        raise DataValidationError(problem)
    usable = videos[listed_videos(videos, dataset_class)]
    train = usable[usable["subset"] == params["train_subset"]]
    test = usable[usable["subset"] == params["test_subset"]]
    if train.empty:
        raise DataValidationError(
            f"snippet_sampling.train_subset={params['train_subset']!r}: no usable video "
            "(all too short; see the validation report)"
        )
    if test.empty:  # else the run would end with mAP 0.0 at every tIoU, without a word
        raise DataValidationError(
            f"snippet_sampling.test_subset={params['test_subset']!r}: no usable video to "
            "evaluate (all too short or without snippets; see the validation report)"
        )
    if shared := set(train["video_id"]) & set(test["video_id"]):
        logger.warning(
            "snippet_sampling: train and test share %d of %d test videos (train_subset=%r, "
            "test_subset=%r): the test mAP is measured on training videos; give the annotations "
            "a train/test split (a CSV: a `subset` column)",
            len(shared),
            len(test),
            params["train_subset"],
            params["test_subset"],
        )
    train_ids = train["video_id"].tolist()
    heldout: list[str] = []
    if sampling.heldout_fraction > 0:
        train_ids, heldout = split_heldout(
            train_ids,
            multi_hot(train["labels"], classlist),
            params["heldout_fraction"],
            split_seed(params),
        )
    pairs = pair_pool_videos(videos, train_ids, params["train_subset"], dataset_class)
    return {
        "train": list(train_ids),
        "heldout": list(heldout),
        "test": test["video_id"].tolist(),
        "pairs": pairs,
    }


def _thin_classes_line(thin: dict[int, int], classlist: list[str]) -> str:
    """One line naming the classes the reference's stream cannot draw pairs from."""
    named = ", ".join(f"{classlist[c]!r} ({n})" for c, n in sorted(thin.items()))
    return (
        f"snippet_sampling.rng='original': the reference's batch stream draws 2 distinct train "
        f"videos of every class, but class(es) {named} have fewer train videos; add videos "
        "of them, or set snippet_sampling.rng=plan, which leaves such classes out of the pairs"
    )


def build_sampling_plan(
    videos: pd.DataFrame, classlist: list[str], data_split: dict, params: dict, training: dict
) -> pd.DataFrame:
    """For every iteration and batch slot: the video id and the seed of its snippet indices.

    `rng: original` draws the batches from the reference's legacy-NumPy stream seeded with
    `training.seed` (one seed for batches, weights and dropout, as the reference's
    `setup_seed`); `rng: plan` from independent per-block streams seeded with `seed`. Fill
    videos come from the train list, pairs from `data_split["pairs"]` (`snippet_sampling.dataset_class`).
    """
    ids, fill, pairs = split_pools(videos, data_split)
    train = videos.set_index("video_id").loc[ids]
    labels = multi_hot(train["labels"], classlist)
    if parse_group("snippet_sampling", params).rng == "original":
        if training["n_similar"] > 0 and (thin := thin_pair_classes(labels, fill, pairs)):
            raise DataValidationError(_thin_classes_line(thin, classlist))
        return reference_sampling_plan(
            video_ids=ids,
            labels=labels,
            lengths=train["n_snippets"].to_numpy(),
            n_iterations=training["max_iter"],
            batch_size=training["batch_size"],
            n_similar=training["n_similar"],
            seed=training["seed"],
            max_seqlen=training["max_seqlen"],
            fill=fill,
            pairs=pairs,
        )
    return make_sampling_plan(
        video_ids=ids,
        labels=labels,
        n_iterations=training["max_iter"],
        batch_size=training["batch_size"],
        n_similar=training["n_similar"],
        seed=params["seed"],
        fill=fill,
        pairs=pairs,
    )
