"""What a tracked run shows in MLflow: run name and tags, experiment kind, logged model, artifacts
at the root, and the clean-up of runs whose process was killed."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from kedro.io import DatasetError
from kedro_helpers import (
    artifact_paths,
    copy_project,
    find_runs,
    tiny_params,
    tiny_trained_project,
    use_tracking,
)
from mlflow.tracking import MlflowClient

from co2net_pipeline.data.frames import features_to_frame
from co2net_pipeline.kedro_glue.datasets import MlflowTagsDataset
from co2net_pipeline.kedro_glue.hooks import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    HOST_TAG,
    PID_TAG,
    mark_killed_runs,
    readable_runner,
    run_name,
    tag_experiment_kind,
)
from co2net_pipeline.method.model import ModelConfig, build_model
from co2net_pipeline.pipelines.training_ml.nodes import detect_new_videos, infer_new_videos
from co2net_pipeline.tracking.detector import example_frame, log_detector

PROPOSALS = {"class_threshold": 0.0}


@pytest.fixture
def client(tmp_path, monkeypatch) -> MlflowClient:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("co2net")
    yield MlflowClient(uri)
    while mlflow.active_run() is not None:
        mlflow.end_run()


def test_run_name_carries_pipeline_seed_env_and_overrides():
    assert run_name("train_eval", 3552) == "train_eval/seed=3552"
    assert run_name("train_eval", 1, "thumos14") == "train_eval/seed=1,env=thumos14"
    assert run_name("train_eval", 1, "local") == "train_eval/seed=1"
    overrides = {"training": {"seed": 1, "max_iter": 20}, "snippet_sampling": {"seed": 1}}
    assert run_name("train_eval", 1, None, overrides) == "train_eval/seed=1,training.max_iter=20"
    assert run_name("ablations", None, None, {"studies": {"ablation_selection": ["a", "b"]}}) == (
        "ablations/studies.ablation_selection=a b"
    )
    assert run_name("inference") == "inference"
    long = run_name("train_eval", 1, None, {"x": "y" * 400})
    assert len(long) == 250 and long.endswith("…")


def test_readable_runner_drops_the_object_address():
    from kedro.runner import SequentialRunner

    assert readable_runner(str(SequentialRunner())) == "SequentialRunner"
    assert readable_runner("ThreadRunner") == "ThreadRunner"
    assert readable_runner(None) == readable_runner("None") == "SequentialRunner"


def test_experiment_kind_tag_is_set_once(client):
    experiment = client.get_experiment_by_name("co2net")
    tag_experiment_kind(client, experiment.experiment_id)
    tag_experiment_kind(client, experiment.experiment_id)
    tags = client.get_experiment(experiment.experiment_id).tags
    assert tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_runs_whose_process_is_gone_are_marked_killed(client):
    experiment_id = client.get_experiment_by_name("co2net").experiment_id
    host = socket.gethostname()

    def running(**tags) -> str:
        return client.create_run(experiment_id, tags=tags).info.run_id

    dead = running(**{PID_TAG: str(_dead_pid()), HOST_TAG: host})
    child = running(**{"mlflow.parentRunId": dead})
    alive = running(**{PID_TAG: str(os.getpid()), HOST_TAG: host})
    elsewhere = running(**{PID_TAG: str(_dead_pid()), HOST_TAG: host + "-other"})
    untagged = running()
    finished = running(**{PID_TAG: str(_dead_pid()), HOST_TAG: host})
    client.set_terminated(finished, "FINISHED")

    assert mark_killed_runs(client, experiment_id, keep=alive) == [dead, child]
    status = {r: client.get_run(r).info.status for r in (dead, child, alive, elsewhere, untagged)}
    assert status == {
        dead: "KILLED",
        child: "KILLED",
        alive: "RUNNING",
        elsewhere: "RUNNING",
        untagged: "RUNNING",
    }
    assert client.get_run(finished).info.status == "FINISHED"
    assert mark_killed_runs(client, experiment_id) == []


def test_a_pid_reused_after_the_run_started_counts_as_gone(client):
    experiment_id = client.get_experiment_by_name("co2net").experiment_id
    run = client.create_run(
        experiment_id,
        start_time=1000,  # 1970: this process started later, so it cannot be the run's
        tags={PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()},
    )
    assert mark_killed_runs(client, experiment_id) == [run.info.run_id]


def _tiny_trained_model(feature_dim: int = 4, classes: tuple[str, ...] = ("A", "B")) -> dict:
    torch.manual_seed(0)
    config = {"feature_dim": feature_dim, "attention_hidden": 8, "n_classes": len(classes)}
    model = build_model(ModelConfig.from_dict(config))
    return {"state_dict": model.state_dict(), "model_config": config, "classlist": list(classes)}


class _Store(dict):
    @property
    def lengths(self) -> dict[str, int]:
        return {v: len(f) for v, f in self.items()}


def test_logged_detector_has_signature_example_and_predicts_like_the_nodes(client):
    rng = np.random.default_rng(0)
    store = _Store(long=rng.normal(size=(90, 8)), short=rng.normal(size=(70, 8)))
    example = example_frame(store, max_snippets=64)
    assert example["video_id"].unique().tolist() == ["short"] and len(example) == 64

    with mlflow.start_run() as run:
        uri = log_detector(_tiny_trained_model(), example, {"device": "cpu"}, PROPOSALS)
    info = mlflow.models.get_model_info(uri)
    assert info.signature is not None and info.saved_input_example_info is not None
    assert info.signature.inputs.input_names()[:3] == ["video_id", "snippet", "rgb_0"]
    logged = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    assert [m.source_run_id for m in logged] == [run.info.run_id]

    new = features_to_frame({"new": rng.normal(size=(40, 8))})
    detections = mlflow.pyfunc.load_model(uri).predict(new)
    cas = infer_new_videos(new, _tiny_trained_model(), {"device": "cpu"})
    expected = detect_new_videos(cas, ["A", "B"], PROPOSALS)
    assert len(detections) > 0
    pd.testing.assert_frame_equal(detections, expected)
    assert set(detections["video_id"]) == {"new"}
    assert set(detections["label"]) <= {"A", "B"}


def test_example_frame_of_an_empty_store_names_the_problem():
    with pytest.raises(ValueError, match="feature store holds no video"):
        example_frame(_Store())


def test_tags_dataset_sets_the_tags_on_the_active_run(client):
    with mlflow.start_run() as run:
        MlflowTagsDataset().save({"model_selection": "last", "selected_iteration": 11})
    tags = client.get_run(run.info.run_id).data.tags
    assert tags["model_selection"] == "last" and tags["selected_iteration"] == "11"


def test_tags_dataset_without_a_run_says_so_and_keeps_the_tags(caplog):
    assert mlflow.active_run() is None
    dataset = MlflowTagsDataset()
    assert not dataset.exists()
    with pytest.raises(DatasetError, match="no tags saved"):
        dataset.load()
    with caplog.at_level(logging.INFO, logger="co2net_pipeline.kedro_glue.datasets"):
        dataset.save({"ambiguous_filter": "off"})
    assert "no active MLflow run: tags not recorded: ambiguous_filter=off" in caplog.text
    assert dataset.exists() and dataset.load() == {"ambiguous_filter": "off"}
    with pytest.raises(DatasetError, match="expected a dict of tags"):
        dataset.save(["not", "tags"])


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    project = tiny_trained_project(tmp_path_factory)
    (run,) = find_runs(project, "tags.mlflow.runName LIKE 'train_eval/%'")
    return project, run


def test_train_eval_run_is_named_tagged_and_has_a_logged_model(tracked_run):
    project, run = tracked_run
    tags = run.data.tags
    assert run.info.run_name.startswith("train_eval/seed=3552,")  # TINY overrides follow
    assert "training.max_iter=12" in run.info.run_name
    assert tags["runner"] == "SequentialRunner"
    assert "--pipeline=" not in tags["kedro_command"]
    assert "run_id" not in tags and len(tags["kedro_session_id"]) > 0
    assert tags[PID_TAG].isdigit() and tags[HOST_TAG] == socket.gethostname()
    use_tracking(project)
    experiment = mlflow.get_experiment(run.info.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    logged = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    assert run.info.run_id in {m.source_run_id for m in logged}


def test_plots_and_tables_sit_at_the_artifact_root(tracked_run):
    project, run = tracked_run
    use_tracking(project)
    root = {p for p in artifact_paths(run.info.run_id) if "/" not in p}
    assert {
        "loss_curves.png",
        "map_vs_tiou.png",
        "video_examples.png",
        "evaluation.json",
        "per_class_ap.csv",
    } <= root


def test_resolved_parameters_include_the_runtime_overrides(tracked_run):
    project, run = tracked_run
    use_tracking(project)
    text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config/resolved_parameters.yml")
    assert "max_iter: 12" in text
    raw = yaml.safe_load(
        mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config/raw_inputs.yml")
    )
    assert raw["raw_features"]["type"] == "WtalcFeaturesDataset"
    assert raw["raw_features"]["filepath"] == str(project / "data/01_raw/synthetic")
    assert raw["raw_annotations"]["wtalc_features"] == raw["raw_features"]["filepath"]
    assert run.data.tags["features_path"].endswith("Thumos14reduced-I3D-JOINTFeatures.npy")
    assert run.data.tags["features_format"] == "wtalc"


def test_node_tags_reach_the_run_through_the_catalog(tracked_run):
    """Ingestion, training and proposals return their tags; `MlflowTagsDataset` sets them."""
    _, run = tracked_run
    tags = run.data.tags
    assert len(tags["feature_fingerprint"]) >= 16 and tags["features_format"] == "wtalc"
    assert tags["model_selection"] == "last" and tags["selected_iteration"] == "11"
    assert tags["device"].startswith(("cpu", "cuda")) and "oracle_test_selection" not in tags
    assert tags["ambiguous_filter"].startswith(("on ", "off "))


def test_kedro_viz_hooks_record_the_run_for_its_workflow_tab(tmp_path):
    # kedro-viz records only SequentialRunner runs, recognised by the runner object's repr
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro.runner import SequentialRunner
    from kedro_mlflow.framework.hooks.mlflow_hook import mlflow_hook

    project = copy_project(tmp_path)
    mlflow_hook.run_id = None  # an earlier session's run (kedro_helpers' module docstring)
    with contextlib.chdir(project):
        bootstrap_project(project)
        with KedroSession.create(project_path=project, runtime_params=tiny_params()) as session:
            session.run(pipeline_names=["synthetic_data"], runner=SequentialRunner())
    events = json.loads((project / ".viz/kedro_pipeline_events.json").read_text())
    assert [e["event"] for e in (events[0], events[-1])] == [
        "before_pipeline_run",
        "after_pipeline_run",
    ]
    assert (project / ".viz/stats.json").is_file()
