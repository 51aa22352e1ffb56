"""The logged detector's input errors: short, naming the columns, NaN blamed on the input."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch

from co2net_pipeline.data.frames import features_to_frame, frame_to_features
from co2net_pipeline.method.model import ModelConfig, build_model
from co2net_pipeline.tracking.detector import log_detector

D = 4


def _frame():
    rng = np.random.default_rng(0)
    return features_to_frame(
        {"v1": rng.normal(size=(20, 2 * D)), "v2": rng.normal(size=(12, 2 * D))}
    )


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        (["rgb_2"], "new video features: missing columns rgb_2 (expected video_id, snippet,"),
        ([f"flow_{i}" for i in range(D)], "missing columns flow_0, flow_1, flow_2, flow_3 ("),
        (["video_id"], "new video features lack the columns ['video_id']"),
    ],
)
def test_missing_columns_are_named_in_a_short_line(drop, expected):
    with pytest.raises(ValueError) as info:
        frame_to_features(_frame().drop(columns=drop))
    text = str(info.value)
    assert expected in text or text.startswith(expected), text
    assert len(text) < 300 and "\n" not in text


def test_many_missing_columns_stay_short():
    wide = features_to_frame({"v": np.zeros((3, 2048))})
    with pytest.raises(ValueError, match=r"missing columns rgb_0, .*\(100 in all\)") as info:
        frame_to_features(wide.drop(columns=[f"rgb_{i}" for i in range(100)]))
    assert len(str(info.value)) < 300


def test_nan_is_reported_in_the_input_by_video_and_column():
    frame = _frame()
    frame.loc[25, "flow_1"] = np.nan  # v2, snippet 5
    with pytest.raises(
        ValueError, match=r"^new video features: video v2: NaN in column flow_1 at snippet 5"
    ):
        frame_to_features(frame)


@pytest.fixture
def logged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("co2net")
    torch.manual_seed(0)
    config = {"feature_dim": D, "attention_hidden": 8, "n_classes": 2}
    model = build_model(ModelConfig.from_dict(config))
    trained = {"state_dict": model.state_dict(), "model_config": config, "classlist": ["A", "B"]}
    with mlflow.start_run():
        uri = log_detector(trained, _frame(), {"device": "cpu"}, {"class_threshold": 0.0})
    yield mlflow.pyfunc.load_model(uri)
    while mlflow.active_run() is not None:
        mlflow.end_run()


def test_loaded_pyfunc_reports_our_short_errors_not_the_schema_dump(logged):
    assert len(logged.predict(_frame())) > 0
    with pytest.raises(Exception) as info:
        logged.predict(_frame().drop(columns=["rgb_1", "flow_3"]))
    text = str(info.value)
    assert "missing columns rgb_1, flow_3" in text and len(text) < 300, text
    frame = _frame()
    frame.loc[3, "rgb_0"] = np.nan
    with pytest.raises(Exception, match=r"video v1: NaN in column rgb_0 at snippet 3") as info:
        logged.predict(frame)
    assert "CAS" not in str(info.value)
