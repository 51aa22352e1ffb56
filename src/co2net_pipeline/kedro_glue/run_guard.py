"""Guards around a `kedro run`: one run per project at a time, an interrupted run's MLflow
record says KILLED, an unusable MLflow store or a full disk is one line.

- `RunLockHook`: a second `kedro run` in the same project (same catalog paths, same model file)
  stops before anything is read or written, in one line naming the running one's pid, start
  time and command. The lock is `<project>/data/.kedro_run.lock` (`common.run_lock`); a dead
  holder's lock is free again, whatever killed it.
- `InterruptHook`: Ctrl-C (SIGINT) and SIGTERM end the active MLflow runs (nested ones
  included) as KILLED when the process exits. Without it MLflow's own exit handler closes them
  FINISHED (Ctrl-C) and SIGTERM leaves them RUNNING.
- `TrackingCheckHook`: the MLflow store is checked before kedro-mlflow uses it
  (`tracking.store_check`: unreachable server, read-only, locked or full store).
- `OutputRollbackHook`: the run's catalog outputs are one transaction (`common.output_journal`):
  a failed run (any error, Ctrl-C, SIGTERM) puts back the previous files it replaced and removes
  the ones it created, so `data/` never mixes two runs' outputs. Covered: the atomic JSON, CSV,
  Parquet, Text and Matplotlib datasets, the feature store, the array stores and the model
  file. Not covered: the synthetic set and the per-video feature folders (folders), the
  training checkpoints (not catalog outputs), MLflow's own records, saves in ParallelRunner's
  worker processes, and a process killed with `kill -9`.
- `DiskFullHook`: a run stopped by a full disk ends with `<file>: no space left on device`
  (and what was rolled back).
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from kedro.framework.hooks import hook_impl

from co2net_pipeline.common.output_journal import RUN_OUTPUTS
from co2net_pipeline.common.run_lock import LockHeld, ProjectLock

LOCK_FILE = Path("data") / ".kedro_run.lock"


class ProjectBusyError(click.ClickException, RuntimeError):
    """Another run holds the project: one line in `kedro run` (exit code 1), a RuntimeError for
    Python callers."""


def _command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "?"


class RunLockHook:
    """Takes the project lock before any other hook opens a run (tryfirst), drops it after."""

    def __init__(self) -> None:
        self._lock: ProjectLock | None = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._lock = ProjectLock(Path(context.project_path) / LOCK_FILE, "this project")

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        if self._lock is None:
            return
        try:
            self._lock.acquire(_command_line())
        except LockHeld as exc:
            raise ProjectBusyError(
                f"{exc}; wait for that run to end, or run from a copy of the project"
            ) from None

    @hook_impl(trylast=True)
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        if self._lock is not None:
            self._lock.release()

    # first: a hook that turns the error into one line raises, and pluggy calls no hook after it
    @hook_impl(tryfirst=True)
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        if self._lock is not None:
            self._lock.release()


class _Interrupted:
    """Which signal interrupted the run, for the exit handler (None: not interrupted)."""

    signum: int | None = None


def _on_signal(signum: int, frame: Any) -> None:
    _Interrupted.signum = signum
    if signum == signal.SIGINT:
        raise KeyboardInterrupt  # click prints "Aborted!"
    raise SystemExit(128 + signum)  # the shell's status for a process ended by `signum`


def end_runs_killed() -> list[str]:
    """If a signal interrupted the run, end every active MLflow run as KILLED (innermost first);
    returns their ids. Registered with atexit after MLflow's own handler, so it runs first."""
    if _Interrupted.signum is None or "mlflow" not in sys.modules:
        return []
    import mlflow

    ended = []
    while (run := mlflow.active_run()) is not None:
        ended.append(run.info.run_id)
        mlflow.end_run("KILLED")
    return ended


class InterruptHook:
    """Installs the SIGINT/SIGTERM handlers for the length of a run (main thread only)."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        import mlflow  # noqa: F401  (its exit handler registered before ours, so ours runs first)

        atexit.unregister(end_runs_killed)
        atexit.register(end_runs_killed)
        _Interrupted.signum = None
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, _on_signal)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @hook_impl(trylast=True)
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        self._restore()

    @hook_impl(tryfirst=True)  # as RunLockHook's: before any hook that raises
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        self._restore()


class TrackingUnusable(click.ClickException, RuntimeError):
    """The MLflow store cannot take the run: one line in `kedro run` (exit code 1)."""


def _mlflow_conf(context) -> dict:
    """conf/<env>/mlflow.yml as kedro-mlflow reads it (this hook runs before kedro-mlflow's)."""
    loader = context.config_loader
    loader.config_patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])
    try:
        return dict(loader["mlflow"] or {})
    except Exception:  # no mlflow.yml, or kedro-mlflow will report its own problem with it
        return {}


class TrackingCheckHook:
    """Checks the MLflow store before kedro-mlflow uses it (`tracking.store_check`)."""

    def __init__(self) -> None:
        self._uri: str | None = None
        self._untracked: list[str] = []

    @hook_impl(tryfirst=True)
    def after_context_created(self, context) -> None:
        from co2net_pipeline.tracking.runs import sqlite_store_path
        from co2net_pipeline.tracking.store_check import (
            prepare_sqlite_store,
            sqlite_problem,
            tracking_problem,
        )

        conf = _mlflow_conf(context)
        server, tracking = conf.get("server") or {}, conf.get("tracking") or {}
        self._uri = server.get("mlflow_tracking_uri")
        self._untracked = list((tracking.get("disable_tracking") or {}).get("pipelines") or [])
        if not self._uri:
            return
        db = sqlite_store_path(self._uri)
        if db is None:  # a server answers, or another kind of store: nothing to prepare
            if problem := tracking_problem(self._uri):
                raise TrackingUnusable(problem)
            return
        experiment = tracking.get("experiment") or {}
        if not db.exists() and (problem := sqlite_problem(db)):
            raise TrackingUnusable(problem)
        prepare_sqlite_store(
            self._uri,
            experiment.get("name") or "Default",
            # beside the store it guards, so that data/ holds only what runs write
            db.with_name(db.name + ".setup-lock"),
            experiment.get("create_experiment_kwargs"),
        )

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        from co2net_pipeline.tracking.store_check import tracking_problem

        names = run_params.get("pipeline_names") or ["__default__"]
        if all(name in self._untracked for name in names):
            return
        if problem := tracking_problem(self._uri):
            raise TrackingUnusable(problem)


def roll_back_unfinished() -> None:
    """At exit: the outputs of a run that never ended (a signal, a BaseException Kedro does not
    pass to `on_pipeline_error`) are rolled back; a no-op once the run has ended."""
    if RUN_OUTPUTS.open:
        RUN_OUTPUTS.rollback()


class OutputRollbackHook:
    """Opens the output journal once nothing else can refuse the run, commits it when the run
    completes, rolls it back when it fails (first, before any hook raises a one-line error)."""

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        RUN_OUTPUTS.begin()
        atexit.unregister(roll_back_unfinished)
        atexit.register(roll_back_unfinished)

    @hook_impl(trylast=True)
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        RUN_OUTPUTS.commit()

    @hook_impl(tryfirst=True)
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        RUN_OUTPUTS.rollback()


class DiskFullRunError(click.ClickException, OSError):
    """A full disk stopped the run: one line naming the file (exit code 1)."""


def disk_full_line(error: BaseException, saving: str | None = None) -> str | None:
    """`<file>: no space left on device` from the first `DiskFullError` in `error`'s chain, else
    `saving` (the line for the dataset being saved), else the disk-full error itself in one
    line; None when the disk was not full."""
    from co2net_pipeline.common.disk_space import DiskFullError, is_disk_full

    if not is_disk_full(error):
        return None
    seen = error
    while seen is not None:
        if isinstance(seen, DiskFullError):
            return str(seen)
        if getattr(seen, "errno", None) is not None and getattr(seen, "filename", None):
            return f"{seen.filename}: no space left on device"
        seen = seen.__cause__ or seen.__context__
    return saving or "no space left on device: " + " ".join(str(error).split())


def _saving_line(dataset: Any) -> str | None:
    """The disk-full line for `dataset`'s save: its file, or for an MLflow artifact dataset
    (whose own file is written atomically, so the failing copy is MLflow's) the artifact."""
    file = getattr(dataset, "_filepath", None)
    if file is None:
        return None
    if getattr(dataset, "_logging_activated", False) and "mlflow" in sys.modules:
        import mlflow

        if (run := mlflow.active_run()) is not None:
            uri = run.info.artifact_uri
            if uri.startswith("file:"):  # a local store: the path itself
                uri = "/" + uri.removeprefix("file:").lstrip("/")
            parts = (dataset.artifact_path, Path(str(file)).name)
            artifact = "/".join([uri.rstrip("/"), *(str(p).strip("/") for p in parts if p)])
            return f"{artifact}: no space left on device (MLflow logging {file})"
    return f"{file}: no space left on device"


class DiskFullHook:
    """After kedro-mlflow has marked the run FAILED: a full disk is one line, not a traceback
    (`CO2NET_DEBUG=1` keeps the traceback). The datasets being saved are followed (per
    thread), to name the file when the error itself names none (MLflow copying an artifact)."""

    def __init__(self) -> None:
        self._catalog = None
        self._saving: dict[int, str | None] = {}

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        self._catalog, self._saving = catalog, {}

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        if self._catalog is not None and dataset_name in self._catalog:
            line = _saving_line(self._catalog.get(dataset_name))
            self._saving[threading.get_ident()] = line

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        self._saving.pop(threading.get_ident(), None)

    @hook_impl(trylast=True)
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        from co2net_pipeline.common.env import debug_enabled

        undone, RUN_OUTPUTS.last = RUN_OUTPUTS.last, None  # this failure's rollback, said once
        if debug_enabled():
            return
        saving = [line for line in self._saving.values() if line]
        if line := disk_full_line(error, saving[0] if len(saving) == 1 else None):
            if undone:
                line += f"; {undone.summary()}"
            raise DiskFullRunError(line) from error
