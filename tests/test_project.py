"""The Kedro project itself: bootstraps, every pipeline resolves against the catalog, runs end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from co2net_pipeline.pipeline_registry import register_pipelines

ROOT = Path(__file__).resolve().parents[1]

# A tiny configuration: 8 channels per modality, a few iterations (tests, not results).
TINY = {
    "synthetic_data": {"generator": {"feature_dim": 8}},
    "feature_ingestion": {"feature_dim": 8},
    "model": {"feature_dim": 8, "attention_hidden": 16},
    "training": {
        "max_iter": 12,
        "interval": 6,
        "max_seqlen": 64,
        "progress": False,
        "log_every": 1,
    },
    "evaluation": {"test_curve_every": 6},
}


def _copy_project(tmp: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    shutil.copytree(ROOT / "conf", tmp / "conf", ignore=shutil.ignore_patterns("local"))
    (tmp / "conf" / "local").mkdir()
    (tmp / "src").mkdir()
    return tmp


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return _copy_project(tmp_path_factory.mktemp("project"))


def test_every_pipeline_resolves_against_the_catalog(project, monkeypatch):
    monkeypatch.chdir(project)
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        context = session.load_context()
        catalog = context.catalog
        declared = set(catalog.keys())
    pipelines = register_pipelines()
    assert {
        "train_eval",
        "__default__",
        "synthetic_data",
        "feature_ingestion",
        "snippet_sampling",
        "training",
        "inference",
        "proposals",
        "evaluation",
    } <= set(pipelines)
    for name, pipe in pipelines.items():
        free = {d for d in pipe.datasets() if not d.startswith("params:") and d != "parameters"}
        missing = free - declared
        assert not missing, f"pipeline {name}: datasets not in the catalog: {sorted(missing)}"
        for param in (d for d in pipe.datasets() if d.startswith("params:")):
            assert param in declared, f"pipeline {name}: parameter {param} is not configured"


@pytest.mark.slow
def test_train_eval_runs_end_to_end_and_is_tracked(project, monkeypatch):
    monkeypatch.chdir(project)  # sqlite:///mlflow.db is relative to the working directory
    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=TINY) as session:
        session.run(pipeline_names=["synthetic_data"])
    with KedroSession.create(project_path=project, runtime_params=TINY) as session:
        session.run(pipeline_names=["train_eval"])

    assert (project / "data/02_intermediate/feature_store.h5").is_file()
    proposals = pd.read_parquet(project / "data/07_model_output/proposals.parquet")
    assert {"video_id", "label", "score", "t_start", "t_end", "t_start_s", "t_end_s"} <= set(
        proposals.columns
    )
    assert len(proposals) > 0

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["co2net"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["training.max_iter"] == "12"
    assert run.data.params["model.feature_dim"] == "8"
    assert run.data.tags["model_selection"] == "last"
    assert run.data.tags["data_source"] == "synthetic"
    assert len(run.data.tags["feature_fingerprint"]) >= 16
    assert len(run.data.tags["git_commit"]) > 0
    for tiou in ("0.1", "0.5", "0.9"):
        value = run.data.metrics[f"detection_metrics.map_{tiou}"]
        assert 0.0 <= value <= 1.0
    assert "detection_metrics.avg_0.1-0.7" in run.data.metrics
    # the test curve at iterations 6 and 11 (the last), and its best point beside the selected model
    curve = mlflow.MlflowClient().get_metric_history(run.info.run_id, "test_curve.avg_0.1-0.7")
    assert [m.step for m in curve] == [6, 11]
    best = run.data.metrics["best_on_test.avg_0.1-0.7"]
    assert best == max(m.value for m in curve)
    assert run.data.metrics["best_on_test.iteration"] in (6, 11)
    # the last curve point is the selected (last-iteration) model's own score
    assert curve[-1].value == pytest.approx(run.data.metrics["detection_metrics.avg_0.1-0.7"])
    history = mlflow.MlflowClient().get_metric_history(
        run.info.run_id, "training_metrics.loss_total"
    )
    assert [m.step for m in history] == list(range(12))
    artifacts = _artifact_paths(run.info.run_id)
    for expected in (
        "model/co2net.pt",
        "detections/proposals.parquet",
        "evaluation.json",
        "per_class_ap.csv",
        "map_vs_tiou.png",
        "loss_curves.png",
        "video_examples.png",
        "validation/validation_report.json",
        "config/resolved_parameters.yml",
    ):
        assert expected in artifacts, f"{expected} not logged; have {sorted(artifacts)}"


def _artifact_paths(run_id: str, path: str | None = None) -> set[str]:
    client = mlflow.MlflowClient()
    out: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            out |= _artifact_paths(run_id, item.path)
        else:
            out.add(item.path)
    return out


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            "thumos14",
            {
                "model.feature_dim": 1024,
                "training.lr": 5e-5,
                "training.max_seqlen": 500,
                "training.max_iter": 5000,
                "loss.topk_divisor": 7,
                "snippet_sampling.test_subset": "test",
                "snippet_sampling.dataset_class": "thumos14",
            },
        ),
        (
            "activitynet12",
            {
                "model.variant": "activitynet12",
                "training.lr": 3e-5,
                "training.max_seqlen": 60,
                "loss.topk_divisor": 5,
                "snippet_sampling.train_subset": "training",
                "snippet_sampling.test_subset": "validation",
                "snippet_sampling.dataset_class": "activitynet12",
                "proposals.ambiguous_filter": False,
            },
        ),
    ],
)
def test_dataset_environments_override_single_keys(project, monkeypatch, env, expected):
    monkeypatch.chdir(project)
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env=env) as session:
        params = session.load_context().params
    for dotted, value in expected.items():
        group, key = dotted.split(".")
        assert params[group][key] == value, dotted
    # soft merge: keys the environment does not name keep their base values
    assert params["training"]["batch_size"] == 10
    assert params["training"]["n_similar"] == 3
    assert params["loss"]["weights"]["norm"] == 0.8
    assert params["feature_ingestion"]["data_source"] == f"{env}_i3d"
