"""Training/test split and the replayable sampling plan (spec §4.1)."""

from __future__ import annotations

import pandas as pd

from co2net_pipeline.method.sampler import (
    make_sampling_plan,
    multi_hot,
    reference_sampling_plan,
    split_heldout,
    split_seed,
)
from co2net_pipeline.params.schema import parse_group


def split_videos(videos: pd.DataFrame, classlist: list[str], params: dict) -> dict:
    """Train / held-out / test video ids.

    Videos that ingestion marked unusable (too short: the reference drops ActivityNet videos with
    <= 10 snippets) leave both lists; the ground truth of the test subset is untouched.
    """
    usable = videos[videos["usable"]] if "usable" in videos else videos
    train = usable[usable["subset"] == params["train_subset"]]
    test = usable[usable["subset"] == params["test_subset"]]
    train_ids = train["video_id"].tolist()
    heldout: list[str] = []
    if parse_group("snippet_sampling", params).heldout_fraction > 0:
        train_ids, heldout = split_heldout(
            train_ids,
            multi_hot(train["labels"], classlist),
            params["heldout_fraction"],
            split_seed(params),
        )
    return {"train": list(train_ids), "heldout": list(heldout), "test": test["video_id"].tolist()}


def build_sampling_plan(
    videos: pd.DataFrame, classlist: list[str], data_split: dict, params: dict, training: dict
) -> pd.DataFrame:
    """For every iteration and batch slot: the video id and the seed of its snippet indices.

    `rng: original` draws the batches from the reference's legacy-NumPy stream seeded with
    `training.seed` (one seed for batches, weights and dropout, as the reference's
    `setup_seed`); `rng: plan` from independent per-block streams seeded with `seed`.
    """
    train = videos.set_index("video_id").loc[data_split["train"]]
    labels = multi_hot(train["labels"], classlist)
    if parse_group("snippet_sampling", params).rng == "original":
        return reference_sampling_plan(
            video_ids=list(train.index),
            labels=labels,
            lengths=train["n_snippets"].to_numpy(),
            n_iterations=training["max_iter"],
            batch_size=training["batch_size"],
            n_similar=training["n_similar"],
            seed=training["seed"],
            max_seqlen=training["max_seqlen"],
        )
    return make_sampling_plan(
        video_ids=list(train.index),
        labels=labels,
        n_iterations=training["max_iter"],
        batch_size=training["batch_size"],
        n_similar=training["n_similar"],
        seed=params["seed"],
    )
