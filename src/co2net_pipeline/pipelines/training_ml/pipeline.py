"""The training chain of train_eval, logged at the end of the run as an MLflow pyfunc model whose
`predict(new_video_features)` returns detections (kedro-mlflow `pipeline_ml_factory`)."""

from importlib.metadata import PackageNotFoundError, version

from kedro.pipeline import Pipeline, node
from kedro_mlflow.pipeline import pipeline_ml_factory

from co2net_pipeline.pipelines.train_eval.pipeline import stage

from .nodes import detect_new_videos, export_new_video_example, infer_new_videos

# Pinned from this environment so logging the model skips MLflow's slow requirement inference.
# The model also needs `co2net_pipeline` importable where it is loaded (its nodes live there).
_REQUIREMENTS = (
    "mlflow",
    "kedro",
    "kedro-mlflow",
    "kedro-datasets",
    "torch",
    "numpy",
    "pandas",
    "pyarrow",
    "h5py",
    "scikit-learn",
)


def _pip_requirements() -> list[str]:
    pins = []
    for name in _REQUIREMENTS:
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")  # torch 2.13.0+cpu → 2.13.0
        except PackageNotFoundError:
            pins.append(name)
    return pins


def create_inference_pipeline() -> Pipeline:
    """new_video_features (+ trained_model, classlist) → new_video_detections."""
    return Pipeline(
        [
            node(
                infer_new_videos,
                inputs=["new_video_features", "trained_model", "params:inference"],
                outputs="new_video_cas",
                name="infer_new_videos",
            ),
            node(
                detect_new_videos,
                inputs=["new_video_cas", "classlist", "params:proposals"],
                outputs="new_video_detections",
                name="detect_new_videos",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    training_chain = (
        stage("feature_ingestion")
        + stage("snippet_sampling")
        + stage("training")
        + Pipeline(
            [
                node(
                    export_new_video_example,
                    inputs=["feature_store", "data_split", "params:training_ml"],
                    outputs="new_video_features",
                    name="export_new_video_example",
                )
            ]
        )
    )
    return pipeline_ml_factory(
        training=training_chain,
        inference=create_inference_pipeline(),
        input_name="new_video_features",
        log_model_kwargs={
            "name": "co2net_detector",
            "signature": "auto",
            "pip_requirements": _pip_requirements(),
        },
    )
