"""Training/test split and the replayable sampling plan (spec §4.1)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from co2net_pipeline.sampling import make_sampling_plan, split_heldout


def multi_hot(labels, classlist: list[str]) -> np.ndarray:
    """(N, C) weak labels from lists of class names."""
    index = {name: i for i, name in enumerate(classlist)}
    out = np.zeros((len(labels), len(classlist)), dtype=np.float32)
    for row, names in enumerate(labels):
        for name in names:
            out[row, index[name]] = 1.0
    return out


def split_seed(params: dict) -> int:
    """Seed of the held-out split: `split_seed`, else `seed` (the sampling plan's)."""
    value = params.get("split_seed")
    return int(params["seed"] if value is None else value)


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
    if params.get("heldout_fraction", 0.0) > 0:
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
    """For every iteration and batch slot: the video id and the seed of its snippet indices."""
    train = videos.set_index("video_id").loc[data_split["train"]]
    return make_sampling_plan(
        video_ids=list(train.index),
        labels=multi_hot(train["labels"], classlist),
        n_iterations=training["max_iter"],
        batch_size=training["batch_size"],
        n_similar=training["n_similar"],
        seed=params["seed"],
    )
