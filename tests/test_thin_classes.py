"""A class with fewer than 2 train videos: the reference's stream (`rng: original`) cannot draw
its pair, so the plan is refused in one line naming the class; `rng: plan` leaves it out."""

import pandas as pd
import pytest

from co2net_pipeline.data.errors import DataValidationError
from co2net_pipeline.pipelines.snippet_sampling.nodes import build_sampling_plan

CLASSES = ["Archery", "Ballet", "BaseballPitch"]
VIDEOS = pd.DataFrame(
    {
        "video_id": ["a1", "a2", "b1", "b2", "c1", "t1"],
        "subset": ["validation"] * 5 + ["test"],
        "n_snippets": [30, 31, 32, 33, 34, 35],
        "labels": [["Archery"], ["Archery"], ["Ballet"], ["Ballet"], ["BaseballPitch"], ["Ballet"]],
    }
)
SPLIT = {"train": ["a1", "a2", "b1", "b2", "c1"], "heldout": [], "test": ["t1"]}
TRAINING = {"batch_size": 10, "n_similar": 3, "seed": 1, "max_iter": 4, "max_seqlen": 20}


def _sampling(rng: str) -> dict:
    return {
        "train_subset": "validation",
        "test_subset": "test",
        "heldout_fraction": 0.0,
        "seed": 3552,
        "split_seed": None,
        "rng": rng,
        "dataset_class": "thumos14",
    }


def test_original_stream_refuses_naming_the_class():
    with pytest.raises(DataValidationError) as info:
        build_sampling_plan(VIDEOS, CLASSES, SPLIT, _sampling("original"), TRAINING)
    text = str(info.value)
    assert "class(es) 'BaseballPitch' (1) have fewer train videos" in text, text
    assert "[2]" not in text and "\n" not in text


def test_plan_stream_leaves_the_class_out_of_the_pairs():
    plan = build_sampling_plan(VIDEOS, CLASSES, SPLIT, _sampling("plan"), TRAINING)
    pair_slots = plan[plan["slot"] < 6]
    assert "c1" not in set(pair_slots["video_id"])
    assert len(plan) == 4 * 10


def test_no_pairs_asked_no_refusal():
    plan = build_sampling_plan(
        VIDEOS, CLASSES, SPLIT, _sampling("original"), TRAINING | {"n_similar": 0}
    )
    assert len(plan) == 40
