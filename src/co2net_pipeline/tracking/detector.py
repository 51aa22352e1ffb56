"""The trained network as an MLflow logged model: new videos' features in, detections out.

Every tracked training run logs it (`hooks.ProjectHooks.after_dataset_saved`), so the run page
shows it under "Logged models". Same input and output as `training_ml`'s kedro-mlflow model:
one row per snippet (`video_id`, `snippet`, `rgb_0..rgb_{D-1}`, `flow_0..flow_{D-1}`) →
the proposals pipeline's detections. Loading it needs `co2net_pipeline` installed.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import warnings
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from co2net_pipeline.data.frames import features_to_frame, frame_to_features
from co2net_pipeline.method.inference import detect_videos
from co2net_pipeline.params.schema import parse_config

MODEL_NAME = "co2net_detector"
# The run's `inference` and `proposals` parameters, as a JSON artifact of the model.
CONFIG_ARTIFACT = "detector_config"
# The input example: the shortest video, at most this many snippets (kept small: it is stored
# as JSON next to the model).
EXAMPLE_SNIPPETS = 64
# Pinned from this environment so logging skips MLflow's requirement inference (a subprocess
# that imports the model: seconds per run).
_REQUIREMENTS = ("mlflow", "torch", "numpy", "pandas", "scikit-learn", "h5py", "pyarrow")


class Detector(PythonModel):
    """pyfunc wrapper of a trained CO2-Net; the run's `inference` and `proposals` parameters
    come as the `detector_config` artifact (`{"inference": {...}, "proposals": {...}}`)."""

    def __init__(self) -> None:
        self._model: dict | None = None
        self._config: dict[str, Any] = {}

    def load_context(self, context) -> None:
        import torch

        self._model = torch.load(
            context.artifacts["trained_model"], map_location="cpu", weights_only=True
        )
        config = context.artifacts.get(CONFIG_ARTIFACT)
        # models logged before the config became an artifact carry it as the model config
        self._config = (
            json.loads(Path(config).read_text()) if config else dict(context.model_config or {})
        )

    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """model_input: one row per snippet (module docstring) → detections, one row each.

        params: `{"proposals": {"class_threshold": 0.1}, "inference": {...}}`, any keys of the
        two groups; the others keep the run's values. Checked as `kedro run --params` is
        (`class_threshold=-5` is a one-line error)."""
        config = with_overrides(self._config, params)
        return detect_videos(
            self._model,
            frame_to_features(model_input),
            parse_config("inference", config["inference"]),
            parse_config("proposals", config["proposals"]),
        )


TUNABLE_GROUPS = ("inference", "proposals")


def with_overrides(
    config: Mapping[str, Any], params: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """The run's `inference` / `proposals` groups with `params`' keys of each put over them."""
    merged = {group: dict(config.get(group) or {}) for group in TUNABLE_GROUPS}
    for group, values in (params or {}).items():
        if group in merged and isinstance(values, Mapping):
            merged[group].update(values)
    return merged


def params_schema(config: Mapping[str, Any]):
    """MLflow's inference-params schema of the detector: one object per tunable group, every
    key optional, defaults = the run's values. Without a schema MLflow drops `params`."""
    from mlflow.models import infer_signature
    from mlflow.types.schema import Object, ParamSchema, ParamSpec, Property

    full = {
        group: dataclasses.asdict(parse_config(group, config.get(group)))
        for group in TUNABLE_GROUPS
    }
    inferred = infer_signature(pd.DataFrame({"x": [0.0]}), params=full).params
    specs = []
    for spec in inferred.params:
        optional = [Property(p.name, p.dtype, required=False) for p in spec.dtype.properties]
        specs.append(ParamSpec(spec.name, Object(optional), full[spec.name]))
    return ParamSchema(specs)


def example_frame(feature_store, max_snippets: int = EXAMPLE_SNIPPETS) -> pd.DataFrame:
    """The first `max_snippets` snippets of the store's shortest video, in the input format."""
    if not len(feature_store):
        raise ValueError("logged model: the feature store holds no video for the input example")
    video = min(feature_store.lengths, key=lambda v: (feature_store.lengths[v], v))
    return features_to_frame({video: feature_store[video][:max_snippets]})


def log_detector(
    trained_model: Mapping[str, Any],
    example: pd.DataFrame,
    inference_params: Mapping[str, Any],
    proposal_params: Mapping[str, Any],
    name: str = MODEL_NAME,
) -> str:
    """Log `trained_model` (the `trained_model` dataset's dict) as a pyfunc model of the active
    run, with signature and input example; returns its `models:/` URI."""
    import torch
    from mlflow.models import infer_signature

    config = {"inference": dict(inference_params), "proposals": dict(proposal_params)}
    detector = Detector()
    detector._model, detector._config = dict(trained_model), config
    output = detector.predict(None, example)
    with warnings.catch_warnings():
        # snippet / class_idx are integers that are never missing
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        signature = infer_signature(example, output)
    signature = _optional_inputs(signature, params_schema(config))
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "co2net.pt"
        torch.save(dict(trained_model), weights)
        # an artifact, not `model_config`: MLflow would also log that as run parameters
        # (`inference/...`), beside the run's own `inference.*`
        config_file = Path(tmp) / "detector_config.json"
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True))
        # "models from code": MLflow stores detector_code.py, not a cloudpickle of the object
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name("detector_code.py")),
            artifacts={"trained_model": str(weights), CONFIG_ARTIFACT: str(config_file)},
            signature=signature,
            input_example=example,
            pip_requirements=_pip_requirements(),
        )
    return info.model_uri


def _optional_inputs(signature, params=None):
    """The signature with every input column optional and of any type: a missing, NaN or
    wrongly typed column reaches `frame_to_features`, whose error is one short line naming the
    column and its dtype (MLflow's own repeats the whole input and schema, ~1.5-5k chars)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    inputs = Schema([ColSpec(AnyType(), c.name, required=False) for c in signature.inputs.inputs])
    return ModelSignature(inputs, signature.outputs, params or signature.params)


def _pip_requirements() -> list[str]:
    pins = []
    for package in _REQUIREMENTS:
        try:
            pins.append(f"{package}=={version(package).split('+')[0]}")  # 2.13.0+cpu → 2.13.0
        except PackageNotFoundError:
            pins.append(package)
    return pins


def predict_features(model_uri: str, features: Mapping[str, Any]) -> pd.DataFrame:
    """Detections of `features` (video_id → (T, 2D) snippet features) by the logged detector at
    `model_uri` (`models:/...`, `runs:/...` or a local model folder): its `predict` on the
    input table of `features_to_frame`."""
    model = mlflow.pyfunc.load_model(model_uri)
    return model.predict(features_to_frame(features))
