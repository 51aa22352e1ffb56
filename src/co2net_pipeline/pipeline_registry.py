"""Registered pipelines: each lives in its own folder under `pipelines/`."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    if "train_eval" in pipelines:
        pipelines["__default__"] = pipelines["train_eval"]
    return pipelines
