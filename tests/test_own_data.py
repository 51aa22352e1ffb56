"""The first day with one's own data (issue 22): subsets checked before any node, a CSV's
train/test split, data identity from what was read, a stale sampling plan in one line."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro_helpers import QUIET_ENV, copy_project, run_command

from co2net_pipeline.data.annotations import load_ground_truth_csv
from co2net_pipeline.data.formats import layout_summary, open_feature_source
from co2net_pipeline.data.identity import data_identity, data_source
from co2net_pipeline.data.synthetic import MANIFEST_NAME
from co2net_pipeline.data.validation import validate_dataset
from co2net_pipeline.kedro_glue.parameter_hook import stale_plan
from co2net_pipeline.method.sampler import subset_problem
from co2net_pipeline.pipelines.snippet_sampling.nodes import split_videos

ENV = {**os.environ, **QUIET_ENV, "COLUMNS": "300"}
DIM = 32  # the default feature_ingestion.feature_dim: this run uses default parameters


def _own_dataset(folder: Path, subsets: dict[str, str], dim: int = DIM) -> tuple[Path, Path]:
    """Per-video .npy features (T, 2·dim) and an ActivityNet-style JSON with these subsets."""
    features = folder / "features"
    features.mkdir(parents=True)
    database = {}
    rng = np.random.default_rng(0)
    for i, (video, subset) in enumerate(subsets.items()):
        np.save(features / f"{video}.npy", rng.random((40 + i, 2 * dim), dtype=np.float32))
        label = "jump" if i % 2 else "run"
        database[video] = {
            "subset": subset,
            "duration": (40 + i) * 16 / 25,
            "annotations": [{"segment": [1.0, 5.0], "label": label}],
        }
    annotations = folder / "mini3.json"
    annotations.write_text(json.dumps({"database": database}))
    return features, annotations


RECIPE = """\
raw_features:
  type: co2net_pipeline.kedro_glue.datasets.NpyFolderFeaturesDataset
  filepath: ${runtime_params:raw_data.features,${globals:raw_data.features}}
  metadata: {kedro-viz: {layer: raw}}
raw_annotations:
  type: co2net_pipeline.kedro_glue.datasets.AnnotationsDataset
  filepath: ${runtime_params:raw_data.annotations,${globals:raw_data.annotations}}
  dataset_name: ${runtime_params:raw_data.dataset_name,${globals:raw_data.dataset_name}}
  metadata: {kedro-viz: {layer: raw}}
"""


def test_json_subsets_that_do_not_match_stop_before_any_node(tmp_path):
    """`kedro run` (default pipeline, default parameters) on JSON annotations whose subsets are
    training/testing: exit 2, one line naming both subsets asked for and the ones present,
    nothing ingested."""
    (tmp_path / "project").mkdir()
    project = copy_project(tmp_path / "project")
    features, annotations = _own_dataset(
        tmp_path / "own", {"v1": "training", "v2": "training", "v3": "testing"}
    )
    (project / "conf/local/catalog.yml").write_text(RECIPE)  # the README's recipe
    done = run_command(
        project,
        "kedro",
        "run",
        f"--params=raw_data.features={features},raw_data.annotations={annotations}",
        env=ENV,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert "Traceback" not in output and "Running node" not in output
    (error,) = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert "snippet_sampling.train_subset='validation'" in error
    assert "test_subset='test'" in error
    assert f"in {annotations} (its subsets: testing, training)" in error
    assert "snippet_sampling.train_subset=training,snippet_sampling.test_subset=testing" in error
    assert not (project / "data/02_intermediate/feature_store.h5").exists()


def test_subset_problem_names_what_is_missing_and_present():
    assert subset_problem(["validation", "test"], "validation", "test", "a.json") is None
    line = subset_problem(["all"], "validation", "all", "gt.csv")
    assert line.startswith("snippet_sampling.train_subset='validation': no such subset in gt.csv")
    assert "(its subsets: all)" in line and "`subset` column" in line


def _csv(path: Path, subsets: dict[str, str] | None) -> Path:
    rows = [
        {"video_id": v, "t_start": 1.0, "t_end": 4.0, "label": "run" if i % 2 else "jump"}
        for i, v in enumerate(["a", "a", "b", "c", "d"])
    ]
    table = pd.DataFrame(rows)
    if subsets is not None:
        table["subset"] = table["video_id"].map(subsets)
    table.to_csv(path, index=False)
    return path


def test_a_csv_subset_column_gives_the_split(tmp_path):
    split = {"a": "train", "b": "train", "c": "test", "d": "test"}
    found = load_ground_truth_csv(_csv(tmp_path / "gt.csv", split))
    assert dict(zip(found.videos["video_id"], found.videos["subset"], strict=True)) == split
    assert not found.durations_known
    plain = load_ground_truth_csv(_csv(tmp_path / "plain.csv", None))
    assert set(plain.videos["subset"]) == {"all"}
    mixed = _csv(tmp_path / "mixed.csv", split)
    table = pd.read_csv(mixed)
    table.loc[1, "subset"] = "test"  # video a's second row
    table.to_csv(mixed, index=False)
    with pytest.raises(ValueError, match=r"mixed.csv: video a: rows in several subsets"):
        load_ground_truth_csv(mixed)


def test_train_and_test_on_the_same_videos_is_a_warning(caplog):
    videos = pd.DataFrame(
        {
            "video_id": ["a", "b", "c"],
            "subset": "all",
            "labels": [["run"], ["run"], ["jump"]],
            "usable": True,
        }
    )
    params = {"train_subset": "all", "test_subset": "all", "heldout_fraction": 0.0, "seed": 1}
    with caplog.at_level(logging.WARNING):
        split = split_videos(videos, ["jump", "run"], params)
    assert split["train"] == split["test"] == ["a", "b", "c"]
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "train and test share 3 of 3 test videos" in record.getMessage()


def test_csv_ingestion_has_no_length_warnings_and_reports_the_filter_off(tmp_path):
    """A CSV has no durations: no length_mismatch / missing_duration warnings; its missing
    ambiguous intervals are reported in the validation report and the tag."""
    features, _ = _own_dataset(tmp_path / "own", {v: "x" for v in "abcd"}, dim=4)
    csv = _csv(tmp_path / "gt.csv", {"a": "train", "b": "train", "c": "test", "d": "test"})
    source, annotations = open_feature_source(features, "npy-folder", csv)
    _, report = validate_dataset(source, annotations, {"feature_dim": 4})
    assert not {"length_mismatch", "missing_duration"} & set(report["warnings"])
    layout = layout_summary(source, annotations)
    assert layout["ambiguous_intervals"] == (
        f"none ({csv} has no ambiguous intervals: ambiguous filter off)"
    )


def test_data_source_comes_from_the_synthetic_manifest(tmp_path):
    features, annotations = _own_dataset(tmp_path / "own", {"a": "x", "b": "y"}, dim=4)
    source, found = open_feature_source(features, "npy-folder", annotations)
    identity = data_identity(source, found.name, "f" * 8, "synthetic")
    assert identity == {
        "dataset": "mini3",
        "data_source": "user",  # the default label, but no synthetic manifest beside them
        "features_path": str(features),
        "features_format": "npy-folder",
        "feature_fingerprint": "f" * 8,
    }
    assert data_source(features, "my_i3d") == "my_i3d"
    (features / MANIFEST_NAME).write_text(json.dumps({"features": str(features)}))
    assert data_source(features, "my_i3d") == "synthetic"
    wtalc = tmp_path / "w" / "Mine-I3D-JOINTFeatures.npy"
    wtalc.parent.mkdir()
    wtalc.write_bytes(b"")
    (wtalc.parent / MANIFEST_NAME).write_text(json.dumps({"features": "elsewhere/Other.npy"}))
    assert data_source(wtalc) == "user"  # a manifest of other features


class _Catalog:
    def __init__(self, plan: pd.DataFrame) -> None:
        self.plan = plan

    def exists(self, name: str) -> bool:
        return name == "sampling_plan"

    def load(self, name: str) -> pd.DataFrame:
        return self.plan


class _Pipeline:
    def inputs(self) -> set[str]:
        return {"sampling_plan", "params:training"}

    def all_outputs(self) -> set[str]:
        return {"trained_model"}


class _Training:
    def __init__(self, max_iter: int, batch_size: int) -> None:
        self.max_iter, self.batch_size = max_iter, batch_size


def test_a_plan_for_other_iterations_is_one_line_naming_snippet_sampling():
    plan = pd.DataFrame(
        {"iteration": np.repeat(np.arange(12), 4), "slot": np.tile(np.arange(4), 12)}
    )
    catalog, pipeline = _Catalog(plan), _Pipeline()
    assert stale_plan(catalog, pipeline, _Training(12, 4)) is None
    assert stale_plan(catalog, pipeline, _Training(6, 4)) is None  # a prefix serves
    line = stale_plan(catalog, pipeline, _Training(100, 4))
    assert line.startswith("dataset 'sampling_plan': built for 12 iterations of batch 4, but ")
    assert "training.max_iter=100" in line
    assert "kedro run --pipelines=snippet_sampling,training" in line
    assert "\n" not in line


def test_missing_synthetic_data_names_the_pipeline_that_writes_it(tmp_path, monkeypatch):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from co2net_pipeline.kedro_glue.parameter_hook import ConfigurationError

    monkeypatch.delenv("CO2NET_DEBUG", raising=False)
    project = copy_project(tmp_path)
    monkeypatch.chdir(project)
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        with pytest.raises(ConfigurationError) as caught:
            session.run(pipeline_names=["feature_ingestion"])
    message = caught.value.format_message()
    assert message.startswith("dataset 'raw_features': ")
    assert "the embedded SYNTHETIC set is not written yet" in message
    assert "kedro run --pipelines=synthetic_data (or make run)" in message


def test_a_truncated_wtalc_file_is_one_line_naming_dataset_and_video(tmp_path):
    """`kedro run` on a W-TALC file cut after some videos: one `Error:` line naming the catalog
    dataset, the file, the entry and its video; Kedro's own ERROR record is not printed too."""
    project = tmp_path / "project"
    project.mkdir()
    project = copy_project(project)
    synthetic = tmp_path / "synthetic"
    done = run_command(
        None,
        "co2net",
        *["synthesize", "--output", str(synthetic), "--feature-dim", "8"],
        env=ENV,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    name = "Thumos14reduced-I3D-JOINTFeatures.npy"
    data = (synthetic / name).read_bytes()
    (broken / name).write_bytes(data[: len(data) // 3])
    (synthetic / "Thumos14reduced-Annotations").rename(broken / "Thumos14reduced-Annotations")
    done = run_command(
        project,
        "kedro",
        *["run", "--pipelines=feature_ingestion"],
        f"--params=raw_data.features={broken},feature_ingestion.feature_dim=8",
        env=ENV,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "Traceback" not in output and "failed with error" not in output
    (error,) = [line for line in output.splitlines() if "unreadable" in line]
    assert error.startswith(f"Error: dataset 'raw_features': {broken / name}[")
    videos = np.load(broken / "Thumos14reduced-Annotations/videoname.npy", allow_pickle=True)
    entry = int(error.split(f"{name}[")[1].split("]")[0])
    assert f"]: video {videos[entry].decode()}: unreadable, the file is truncated" in error
    assert f"({entry} of {len(videos)} entries read;" in error


def test_summary_of_user_data_has_no_synthetic_disclaimer():
    from co2net_pipeline.cli import summary_lines
    from co2net_pipeline.tracking.runs import RunRecord

    metrics = {"detection_metrics.map_0.5": 0.3, "detection_metrics.avg_0.1-0.7": 0.25}
    for source, disclaimer in (("user", False), ("synthetic", True)):
        run = RunRecord(
            "r" * 32, "train_eval", "FINISHED", 0, metrics, tags={"data_source": source}
        )
        text = "\n".join(summary_lines(run, "co2net", "sqlite:///mlflow.db"))
        assert f"data: {source}" in text
        assert ("SYNTHETIC" in text) == disclaimer


def test_training_after_another_max_iter_says_to_rerun_snippet_sampling(
    tmp_path_factory, monkeypatch
):
    """`kedro run --pipelines=training` with a longer `training.max_iter` than the sampling
    plan on disk was built for: one line before any node, naming snippet_sampling."""
    from kedro_helpers import run_pipeline, tiny_trained_project

    from co2net_pipeline.kedro_glue.parameter_hook import ConfigurationError

    monkeypatch.delenv("CO2NET_DEBUG", raising=False)
    project = tiny_trained_project(tmp_path_factory)  # its plan: TINY's 12 iterations
    model = project / "data/06_models/co2net.pt"
    before = model.stat().st_mtime_ns if model.exists() else None
    with pytest.raises(ConfigurationError) as caught:
        run_pipeline(project, "training", {"training": {"max_iter": 24}})
    message = caught.value.format_message()
    assert message.startswith("dataset 'sampling_plan': built for 12 iterations of batch ")
    assert "training.max_iter=24" in message
    assert "kedro run --pipelines=snippet_sampling,training" in message
    assert (model.stat().st_mtime_ns if model.exists() else None) == before
