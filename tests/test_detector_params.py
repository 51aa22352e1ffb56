"""The README's re-tuning call on the logged detector (issue 24): `predict(frame, params=
{"proposals": {...}})` takes effect (it was silently dropped: no params schema) and a value out
of range is refused in one line."""

from __future__ import annotations

import os

import mlflow
import pytest
import torch
from test_pyfunc_errors import D, _frame

from co2net_pipeline.method.model import ModelConfig, build_model
from co2net_pipeline.tracking.detector import log_detector


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    cwd = os.getcwd()
    tmp = tmp_path_factory.mktemp("detector")
    os.chdir(tmp)  # MLflow puts artifacts in ./mlruns, beside a sqlite store's working directory
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    mlflow.set_experiment("co2net")
    torch.manual_seed(0)
    config = {"feature_dim": D, "attention_hidden": 8, "n_classes": 2}
    model = build_model(ModelConfig.from_dict(config))
    trained = {"state_dict": model.state_dict(), "model_config": config, "classlist": ["A", "B"]}
    try:
        with mlflow.start_run():
            uri = log_detector(trained, _frame(), {"device": "cpu"}, {"class_threshold": 0.0})
        yield mlflow.pyfunc.load_model(uri)
    finally:
        os.chdir(cwd)


def test_params_retune_the_logged_detector(detector):
    schema = {spec.name: spec for spec in detector.metadata.get_params_schema().params}
    assert set(schema) == {"inference", "proposals"}
    assert schema["proposals"].default["class_threshold"] == 0.0  # the run's value
    every_class = detector.predict(_frame())
    assert set(every_class["label"]) == {"A", "B"}  # threshold 0: both classes localised
    # only the key given changes; 1.0 leaves the argmax class of each video (reference rule)
    top_only = detector.predict(_frame(), params={"proposals": {"class_threshold": 1.0}})
    assert len(top_only) < len(every_class)
    assert top_only.groupby("video_id")["label"].nunique().max() == 1


def test_out_of_range_params_are_one_line(detector):
    with pytest.raises(Exception) as info:
        detector.predict(_frame(), params={"proposals": {"class_threshold": -5.0}})
    text = str(info.value)
    assert "proposals.class_threshold=-5: must be >= 0" in text and "\n" not in text
