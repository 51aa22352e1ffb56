"""Guards around a `kedro run`: one run per project at a time, and an interrupted run's MLflow
record says KILLED.

- `RunLockHook`: a second `kedro run` in the same project (same catalog paths, same model file)
  stops before anything is read or written, in one line naming the running one's pid, start
  time and command. The lock is `<project>/data/.kedro_run.lock` (`common.run_lock`); a dead
  holder's lock is free again, whatever killed it.
- `InterruptHook`: Ctrl-C (SIGINT) and SIGTERM end the active MLflow runs (nested ones
  included) as KILLED when the process exits. Without it MLflow's own exit handler closes them
  FINISHED (Ctrl-C) and SIGTERM leaves them RUNNING.
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

    @hook_impl(trylast=True)
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

    @hook_impl(trylast=True)
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        self._restore()
