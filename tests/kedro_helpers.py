"""Shared helpers for integration tests that run Kedro sessions in a copy of the project.

`tiny_trained_project()` builds ONE project per test process (synthetic data + a tiny
train_eval run, ~40 s) that the study, tracking, pyfunc and notebook tests reuse; it is cached
here, at module level, so every test module gets the same directory.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from test_project import TINY, _artifact_paths, _copy_project

__all__ = ["TINY", "artifact_paths", "find_runs", "run_pipeline", "tiny_params", "tiny_trained_project", "use_tracking"]

artifact_paths = _artifact_paths
_SHARED: dict[str, Path] = {}


def tiny_params(extra: Mapping[str, Any] | None = None) -> dict:
    """TINY with `extra` merged in (nested dictionaries merge)."""
    from co2net_pipeline.studies import merge_overrides

    return merge_overrides(copy.deepcopy(TINY), extra)


def run_pipeline(project: Path, pipeline: str, extra: Mapping[str, Any] | None = None) -> None:
    """`kedro run --pipeline=<pipeline>` on the TINY configuration (+ extra), from the project root."""
    with contextlib.chdir(project):  # sqlite:///mlflow.db is relative to the working directory
        bootstrap_project(project)
        with KedroSession.create(project_path=project, runtime_params=tiny_params(extra)) as session:
            session.run(pipeline_names=[pipeline])


def use_tracking(project: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")


def find_runs(project: Path, filter_string: str = "") -> list:
    """Runs of experiment `co2net` in the project, newest first."""
    use_tracking(project)
    return mlflow.search_runs(
        experiment_names=["co2net"], filter_string=filter_string, order_by=["attributes.start_time DESC"], output_format="list"
    )


def tiny_trained_project(tmp_path_factory) -> Path:
    """A project copy with the synthetic data ingested and one tiny train_eval run tracked."""
    if "path" not in _SHARED:
        project = _copy_project(tmp_path_factory.mktemp("tiny_project"))
        run_pipeline(project, "synthetic_data")
        run_pipeline(project, "train_eval")
        _SHARED["path"] = project
    return _SHARED["path"]
