"""Shared helpers for integration tests that run Kedro sessions in a copy of the project.

`tiny_trained_project()` builds ONE project copy per test process (synthetic data + a tiny
train_eval run) that the study, tracking, pyfunc and notebook tests reuse; it is cached here,
at module level, so every test module gets the same directory.

The copy tracks to an absolute sqlite URI (see `copy_project`). Two things `run_pipeline` does that a plain `kedro run` (one process per run) never needs:
- kedro-mlflow 2.0.3 re-opens the pipeline's run before every node with
  `start_run(run_id=..., nested=tracking.run.nested)`; with `nested: True` (conf/base/mlflow.yml)
  each node pushes the same run on MLflow's active-run stack and only one entry is popped at the
  end, so the run stays "active" in the process and the NEXT session in the same process would
  log into it. Its hook is also a process-wide singleton that keeps the last `run_id`, and a
  session whose pipeline has tracking disabled (synthetic_data) re-opens that stale run before
  each node ("Run with id=... not found" when it lives in another project's database). Both
  are cleared before and after each session.
- torch runs on 1 intra-op thread: the tiny models are faster that way, and with another process
  on the 2 cores, 2 OpenMP threads make whole-video inference ~100x slower.
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro_mlflow.framework.hooks.mlflow_hook import mlflow_hook
from test_project import TINY, _artifact_paths, _copy_project

__all__ = [
    "QUIET_ENV",
    "TINY",
    "artifact_paths",
    "copy_project",
    "find_runs",
    "one_torch_thread",
    "run_command",
    "run_pipeline",
    "tiny_params",
    "tiny_trained_project",
    "use_tracking",
]

artifact_paths = _artifact_paths
_SHARED: dict[str, Path] = {}
# no telemetry, one-line errors (no traceback) and a terminal wide enough for the error line
QUIET_ENV = {"DO_NOT_TRACK": "true", "CO2NET_DEBUG": "0", "COLUMNS": "200"}


def tiny_params(extra: Mapping[str, Any] | None = None) -> dict:
    """TINY with `extra` merged in (nested dictionaries merge)."""
    from co2net_pipeline.params.overrides import merge_overrides

    return merge_overrides(copy.deepcopy(TINY), extra)


@contextlib.contextmanager
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_pipeline(
    project: Path, pipeline: str | list[str], extra: Mapping[str, Any] | None = None
) -> None:
    """`kedro run --pipelines=<pipeline(s)>` on the TINY configuration (+ extra), from the project root."""
    # sqlite:///mlflow.db is relative to the working directory
    with contextlib.chdir(project), one_torch_thread():
        bootstrap_project(project)
        _forget_mlflow_run()  # whatever an earlier session (here or in another test module) left
        try:
            with KedroSession.create(
                project_path=project, runtime_params=tiny_params(extra)
            ) as session:
                session.run(
                    pipeline_names=[pipeline] if isinstance(pipeline, str) else list(pipeline)
                )
        finally:
            _forget_mlflow_run()


def run_command(
    project: Path | None,
    command: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """`<command> <args>` in a process of its own, in `project` (None: this directory), its
    stdout and stderr captured as text. command: a script of this virtual environment (`kedro`,
    `co2net`, `co2net-pipeline`); env: the whole environment, by default this process's with
    `QUIET_ENV`."""
    return subprocess.run(
        [str(Path(sys.executable).with_name(command)), *args],
        cwd=project,
        env={**os.environ, **QUIET_ENV} if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _forget_mlflow_run() -> None:
    """Leave no MLflow run behind for the next session of this process (module docstring)."""
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow_hook.run_id = None


def use_tracking(project: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")


def find_runs(project: Path, filter_string: str = "") -> list:
    """Runs of experiment `co2net` in the project, newest first."""
    use_tracking(project)
    return mlflow.search_runs(
        experiment_names=["co2net"],
        filter_string=filter_string,
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )


def copy_project(tmp: Path) -> Path:
    """The project's pyproject.toml and conf/ in `tmp`, tracking to an ABSOLUTE sqlite URI.

    MLflow caches its store per URI string for the life of the process (an lru_cache), so the
    relative `sqlite:///mlflow.db` of conf/base/mlflow.yml resolves against whatever directory
    the FIRST session of the process ran in; sessions of another project copy in the same
    pytest process would then log there. An absolute URI keeps each copy's runs in its own DB.
    """
    project = _copy_project(tmp)
    mlflow_yml = project / "conf/base/mlflow.yml"
    text = mlflow_yml.read_text()
    relative = "mlflow_tracking_uri: sqlite:///mlflow.db"
    assert relative in text, f"{mlflow_yml}: expected {relative!r}"
    mlflow_yml.write_text(
        text.replace(relative, f"mlflow_tracking_uri: sqlite:///{project / 'mlflow.db'}")
    )
    return project


def tiny_trained_project(tmp_path_factory) -> Path:
    """A project copy with the synthetic data ingested and one tiny train_eval run tracked."""
    if "path" not in _SHARED:
        project = copy_project(tmp_path_factory.mktemp("tiny_project"))
        run_pipeline(project, "synthetic_data")
        run_pipeline(project, "train_eval")
        _SHARED["path"] = project
    return _SHARED["path"]
