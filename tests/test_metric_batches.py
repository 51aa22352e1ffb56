"""Metric histories reach MLflow in batches (issue 22): a 2,000-iteration loss history is
logged in seconds, not one SQLite transaction per value."""

from __future__ import annotations

import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from co2net_pipeline.kedro_glue.mlflow_datasets import (
    MAX_METRICS_PER_BATCH,
    BatchedMetricsHistoryDataset,
)

TERMS = ("total", "mil", "cas_mil", "mutual", "norm", "guide", "reliability")


def _history(iterations: int) -> dict:
    return {
        f"loss_{term}": [{"value": 1.0 / (i + k + 1), "step": i} for i in range(iterations)]
        for k, term in enumerate(TERMS)
    }


@pytest.fixture
def tracking(tmp_path):
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("batches")
    yield MlflowClient()
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


def test_2000_iterations_of_history_are_logged_in_batches_under_3_s(tracking, monkeypatch):
    calls = []
    log_batch = MlflowClient.log_batch

    def counted(self, run_id, metrics=(), **kwargs):
        calls.append(len(metrics))
        return log_batch(self, run_id, metrics=metrics, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", counted)
    seconds = []
    with mlflow.start_run() as run:
        # this process's CPU seconds, not wall time: other processes share the 2 cores
        for prefix in ("training_metrics", "again"):
            started = time.process_time()
            BatchedMetricsHistoryDataset(prefix=prefix).save(_history(2000))
            seconds.append(time.process_time() - started)
    n_values = 2 * 2000 * len(TERMS)
    assert sum(calls) == n_values and max(calls) <= MAX_METRICS_PER_BATCH
    assert len(calls) == 2 * -(-n_values // 2 // MAX_METRICS_PER_BATCH)
    history = tracking.get_metric_history(run.info.run_id, "training_metrics.loss_mil")
    assert sorted((m.step, m.value) for m in history) == [(i, 1.0 / (i + 2)) for i in range(2000)]
    assert min(seconds) < 3.0, f"2,000 iterations x {len(TERMS)} terms took {seconds} s"


def test_the_logged_detector_adds_no_parameters_to_its_run(tracking):
    """The detector's `inference` / `proposals` settings travel as a model artifact: logging it
    adds no `inference/*` or `proposals/*` parameters beside the run's `inference.*`."""
    import numpy as np
    from test_hooks import PROPOSALS, _Store, _tiny_trained_model

    from co2net_pipeline.data.frames import features_to_frame
    from co2net_pipeline.tracking.detector import example_frame, log_detector

    rng = np.random.default_rng(0)
    example = example_frame(_Store(a=rng.normal(size=(40, 8))), max_snippets=32)
    with mlflow.start_run() as run:
        mlflow.log_params({"inference.device": "cpu", "proposals.class_threshold": 0.0})
        uri = log_detector(_tiny_trained_model(), example, {"device": "cpu"}, PROPOSALS)
    params = tracking.get_run(run.info.run_id).data.params
    assert sorted(params) == ["inference.device", "proposals.class_threshold"]
    model = mlflow.pyfunc.load_model(uri)
    assert model.unwrap_python_model()._config == {
        "inference": {"device": "cpu"},
        "proposals": PROPOSALS,
    }
    assert len(model.predict(features_to_frame({"new": rng.normal(size=(40, 8))}))) > 0
