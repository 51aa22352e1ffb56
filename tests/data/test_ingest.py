"""Ingestion end to end: the real THUMOS14 annotations, skipping, atomicity, the CLI entry."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_helpers import leftover_temp_files, write_hdf5, write_json, write_npy_folder, write_wtalc

from co2net_pipeline.cli import main as co2net
from co2net_pipeline.data.ingest import dataset_slug, ingest, read_videos_table
from co2net_pipeline.data.store import FeatureStore
from co2net_pipeline.data.synthetic import synthesize
from co2net_pipeline.data.validation import DataValidationError


@pytest.fixture(scope="module")
def synthetic_thumos(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw") / "synthetic"
    synthesize(out, "Thumos14reduced", {"feature_dim": 4, "seed": 0})
    return out


def _outputs(root):
    return {
        "store_path": root / "inter" / "feats.h5",
        "tables_dir": root / "primary",
        "report_dir": root / "report",
    }


def test_real_thumos14_annotations(tmp_path, synthetic_thumos):
    result = ingest(synthetic_thumos, **_outputs(tmp_path))
    assert not result.skipped
    videos, segments = result.videos, result.segments
    assert len(videos) == 412
    assert videos["subset"].value_counts().to_dict() == {"test": 212, "validation": 200}
    subset_of = dict(zip(videos["video_id"], videos["subset"], strict=True))
    counts = segments["video_id"].map(subset_of).value_counts().to_dict()
    assert counts == {"validation": 3007, "test": 3358}
    assert len(result.classlist) == 20 and result.classlist[0] == "BaseballPitch"
    report = result.report
    assert report["subsets"]["test"]["instances"] == 3358
    assert report["subsets"]["validation"]["instances"] == 3007
    warnings = report["warnings"]
    assert warnings["label_disagreement"]["count"] == 28
    assert warnings["empty_video_labels"]["videos"] == ["video_test_0000270"]
    assert (
        warnings["segments_past_duration"]["count"],
        warnings["segments_past_duration"]["n_videos"],
    ) == (30, 5)
    assert "length_mismatch" not in warnings and "short_videos" not in warnings
    assert len(result.ambiguous) == 99
    # Test GT per class as in the reference-data README.
    test_counts = report["subsets"]["test"]["instances_per_class"]
    assert list(test_counts.values()) == [
        41,
        488,
        106,
        98,
        217,
        138,
        170,
        388,
        48,
        36,
        242,
        135,
        169,
        142,
        399,
        144,
        48,
        141,
        88,
        120,
    ]
    assert list(report["subsets"]["validation"]["videos_per_class"].values()) == [
        11,
        10,
        10,
        10,
        10,
        16,
        13,
        20,
        10,
        10,
        10,
        10,
        10,
        10,
        10,
        10,
        10,
        10,
        11,
        10,
    ]

    with FeatureStore(result.store_path) as store:
        assert store.video_ids == videos["video_id"].tolist()
        assert store.feature_dim == 4 and store.fingerprint == result.fingerprint
        assert store.lengths == dict(zip(videos["video_id"], videos["n_snippets"], strict=True))
        assert store.dataset_name == "Thumos14reduced"
    # Tables on disk equal the returned ones.
    back = read_videos_table(result.paths["videos"])
    pd.testing.assert_frame_equal(back, videos)
    pd.testing.assert_frame_equal(pd.read_parquet(result.paths["segments"]), segments)
    assert result.paths["report_md"].read_text().startswith("# Validation report: Thumos14reduced")
    assert leftover_temp_files(tmp_path) == []


def test_rerun_skips_until_inputs_or_params_change(tmp_path, synthetic_thumos):
    outputs = _outputs(tmp_path)
    first = ingest(synthetic_thumos, **outputs)
    mtime = os.stat(first.store_path).st_mtime_ns
    again = ingest(synthetic_thumos, **outputs)
    assert again.skipped and again.fingerprint == first.fingerprint
    assert os.stat(first.store_path).st_mtime_ns == mtime
    pd.testing.assert_frame_equal(again.videos, first.videos)
    pd.testing.assert_frame_equal(again.segments, first.segments)
    assert again.classlist == first.classlist and again.report == first.report
    assert not ingest(synthetic_thumos, **outputs, params={"min_snippets": 5}).skipped
    assert ingest(synthetic_thumos, **outputs, params={"min_snippets": 5}).skipped
    assert not ingest(
        synthetic_thumos, **outputs, params={"min_snippets": 5}, dtype="float16"
    ).skipped
    assert not ingest(
        synthetic_thumos, **outputs, params={"min_snippets": 5}, dtype="float16", force=True
    ).skipped
    first.paths["segments"].unlink()
    assert not ingest(
        synthetic_thumos, **outputs, params={"min_snippets": 5}, dtype="float16"
    ).skipped


def test_changed_features_are_reingested(tmp_path, tiny):
    annotations, features = tiny
    write_wtalc(tmp_path / "raw", annotations, features)
    outputs = _outputs(tmp_path)
    first = ingest(tmp_path / "raw", **outputs)
    features["vid_a"] = features["vid_a"] + 1
    write_wtalc(tmp_path / "raw", annotations, features)
    second = ingest(tmp_path / "raw", **outputs)
    assert not second.skipped and second.fingerprint != first.fingerprint
    np.testing.assert_array_equal(FeatureStore(second.store_path)["vid_a"], features["vid_a"])


@pytest.mark.parametrize("fmt", ["npy-folder", "hdf5"])
def test_other_formats_with_json(tmp_path, tiny, fmt):
    annotations, features = tiny
    ann = write_json(tmp_path / "gt.json", annotations)
    path = (
        write_npy_folder(tmp_path / "feats", features)
        if fmt == "npy-folder"
        else write_hdf5(tmp_path / "feats.h5", features)
    )
    result = ingest(path, ann, fmt=fmt, dataset_name="Tiny JSON", **_outputs(tmp_path))
    assert result.paths["videos"].name == "tiny_json_videos.parquet"
    assert set(result.videos["video_id"]) == set(features)
    store = FeatureStore(result.store_path)
    for vid, array in features.items():
        np.testing.assert_array_equal(store[vid], array)


def test_invalid_input_writes_nothing(tmp_path, tiny):
    annotations, features = tiny
    features["vid_d"][3, 3] = np.nan
    write_wtalc(tmp_path / "raw", annotations, features)
    outputs = _outputs(tmp_path)
    with pytest.raises(DataValidationError, match="video vid_d: features contain NaN"):
        ingest(tmp_path / "raw", **outputs)
    assert not any(p.exists() for p in outputs.values() if p.suffix == ".h5")
    assert not outputs["tables_dir"].exists() and not outputs["report_dir"].exists()


def test_invalid_input_keeps_the_previous_store(tmp_path, tiny):
    annotations, features = tiny
    write_wtalc(tmp_path / "raw", annotations, features)
    outputs = _outputs(tmp_path)
    good = ingest(tmp_path / "raw", **outputs)
    before = good.store_path.read_bytes()
    features["vid_a"] = features["vid_a"][:, :4]
    write_wtalc(tmp_path / "raw", annotations, features)
    with pytest.raises(DataValidationError):
        ingest(tmp_path / "raw", **outputs)
    assert good.store_path.read_bytes() == before


def _co2net_ingest(features: Path, output: Path) -> int:
    return co2net(["ingest", "--features", str(features), "--output", str(output)])


def test_co2net_ingest(tmp_path, tiny, capsys):
    annotations, features = tiny
    write_wtalc(tmp_path / "raw", annotations, features)
    assert _co2net_ingest(tmp_path / "raw", tmp_path / "out" / "tiny.h5") == 0
    out = capsys.readouterr().out
    assert "# Validation report: Tiny" in out and "wrote" in out and "tiny_videos.parquet" in out
    assert FeatureStore(tmp_path / "out" / "tiny.h5").video_ids == [
        "vid_a",
        "vid_b",
        "vid_c",
        "vid_d",
    ]
    assert _co2net_ingest(tmp_path / "raw", tmp_path / "out" / "tiny.h5") == 0
    assert "up to date" in capsys.readouterr().out

    features["vid_b"] = features["vid_b"][:, :5]
    write_wtalc(tmp_path / "bad", annotations, features)
    assert _co2net_ingest(tmp_path / "bad", tmp_path / "bad_out" / "tiny.h5") == 2
    captured = capsys.readouterr()
    assert (
        "co2net ingest: error:" in captured.err
        and "video vid_b: features have 5 columns" in captured.err
    )
    assert not (tmp_path / "bad_out").exists()
    assert _co2net_ingest(tmp_path / "nowhere", tmp_path / "x.h5") == 2
    assert "nowhere: features not found" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*"))  # no staging folder left behind


def test_default_output_locations(tmp_path, tiny, monkeypatch):
    annotations, features = tiny
    write_wtalc(tmp_path / "raw", annotations, features)
    monkeypatch.chdir(tmp_path)
    result = ingest(tmp_path / "raw")
    assert result.store_path == Path("data/02_intermediate/tiny_features.h5")
    assert (tmp_path / result.store_path).is_file()
    assert (tmp_path / "data/03_primary/tiny_segments.parquet").is_file()
    assert (tmp_path / "data/08_reporting/tiny_validation_report.md").is_file()


def test_dataset_slug():
    assert dataset_slug("ActivityNet1.2") == "activitynet1_2"
    assert dataset_slug("Thumos14reduced") == "thumos14reduced"
    assert dataset_slug("***") == "dataset"
