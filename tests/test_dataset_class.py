"""One parameter, `snippet_sampling.dataset_class`, decides the original dataset class's
behaviour (the class-pair pools and the filter of short videos), whatever the dataset's name;
an `activitynet12` run on a videos table ingested before `all_zero` existed stops in one line."""

from __future__ import annotations

import pytest
from test_activitynet import SAMPLING, VIDEOS, _anet_wtalc

from co2net_pipeline.data.errors import DataValidationError
from co2net_pipeline.data.ingest import ingest
from co2net_pipeline.params.schema import ParameterError, parse_group
from co2net_pipeline.pipelines.snippet_sampling.nodes import split_videos

SHORT = {v for v, (_, _, length, _) in VIDEOS.items() if 0 < length <= 10}


def _ingested(folder, name: str):
    _anet_wtalc(folder / "raw", name)
    return ingest(folder / "raw", store_path=folder / "f.h5", tables_dir=folder, report_dir=folder)


@pytest.mark.parametrize("name", ["RenamedFeatures", "ActivityNetTiny"])
def test_dataset_class_alone_decides_the_short_video_filter(tmp_path, name) -> None:
    """An ActivityNet-layout file, named with or without "activitynet": activitynet12 drops its
    short videos (<= 10 snippets) from the train and test lists, thumos14 keeps them."""
    result = _ingested(tmp_path, name)
    assert SHORT == {"t_c_short1", "t_c_short2", "v_short"}
    anet = split_videos(result.videos, result.classlist, SAMPLING)
    assert not SHORT & set(anet["train"] + anet["test"])
    assert {"t_c_short1", "t_c_short2"} <= set(anet["pairs"])  # the original's pools keep them
    thumos = split_videos(
        result.videos, result.classlist, {**SAMPLING, "dataset_class": "thumos14"}
    )
    assert SHORT <= set(thumos["train"] + thumos["test"])
    assert thumos["pairs"] == thumos["train"]
    assert "t_empty" not in thumos["train"] + anet["train"] + anet["pairs"]  # T = 0: never


def test_activitynet12_on_a_table_without_all_zero_asks_for_a_re_ingest(tmp_path) -> None:
    result = _ingested(tmp_path, "ActivityNetTiny")
    old = result.videos.drop(columns="all_zero")  # as ingested before issue 20
    with pytest.raises(DataValidationError) as info:
        split_videos(old, result.classlist, SAMPLING)
    text = str(info.value)
    assert "\n" not in text
    assert "no `all_zero` column" in text
    assert "kedro run --pipelines=feature_ingestion" in text
    # THUMOS14's class does not need the column
    split = split_videos(old, result.classlist, {**SAMPLING, "dataset_class": "thumos14"})
    assert "t_b4" in split["train"]


@pytest.mark.parametrize(
    ("group", "values", "expected"),
    [
        (
            "snippet_sampling",
            {"pools": "activitynet12"},
            "snippet_sampling.pools: moved to snippet_sampling.dataset_class",
        ),
        (
            "feature_ingestion",
            {"validation": {"drop_short_videos": True}},
            "feature_ingestion.validation.drop_short_videos: moved to "
            "snippet_sampling.dataset_class",
        ),
    ],
)
def test_old_keys_name_dataset_class(group, values, expected) -> None:
    with pytest.raises(ParameterError) as info:
        parse_group(group, values)
    assert str(info.value).startswith(expected), str(info.value)
