"""One `kedro run` per project at a time, and interrupted runs recorded as KILLED (issue 24)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from kedro_helpers import copy_project, find_runs

from co2net_pipeline.common.run_lock import LockHeld, ProjectLock
from co2net_pipeline.data.synthetic import pending_synthetic_set
from co2net_pipeline.kedro_glue import run_guard

HOLD = """
import sys, time
from co2net_pipeline.common.run_lock import ProjectLock
ProjectLock(sys.argv[1]).acquire("holder --seed 2")
print("held", flush=True)
sys.stdin.read()
"""


def test_lock_names_a_live_holder_and_is_free_once_it_dies(tmp_path):
    path = tmp_path / "data" / ".kedro_run.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld) as info:
            ProjectLock(path).acquire("second")
        message = str(info.value)
        assert "\n" not in message and f"pid {holder.pid} (started " in message
        assert "holder --seed 2" in message and str(path) in message
    finally:
        holder.kill()  # kill -9: the lock file stays, naming a dead pid
        holder.wait()
    assert json.loads(path.read_text())["pid"] == holder.pid
    lock = ProjectLock(path)
    lock.acquire("third")  # a dead holder's lock is taken over
    try:
        assert json.loads(path.read_text())["pid"] == os.getpid()
        lock.acquire("again")  # the same process: no self-deadlock
    finally:
        lock.release()
    assert path.read_text() == "" and not lock.held


def test_signals_interrupt_and_runs_end_killed(tmp_path, monkeypatch):
    with pytest.raises(KeyboardInterrupt):
        run_guard._on_signal(signal.SIGINT, None)
    with pytest.raises(SystemExit) as info:
        run_guard._on_signal(signal.SIGTERM, None)
    assert info.value.code == 128 + signal.SIGTERM
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        monkeypatch.setattr(run_guard._Interrupted, "signum", None)
        parent = mlflow.start_run()
        child = mlflow.start_run(nested=True)
        assert run_guard.end_runs_killed() == []  # not interrupted: left to MLflow
        monkeypatch.setattr(run_guard._Interrupted, "signum", signal.SIGINT)
        ended = run_guard.end_runs_killed()
        client = mlflow.MlflowClient()
        assert ended == [child.info.run_id, parent.info.run_id]
        assert {client.get_run(r).info.status for r in ended} == {"KILLED"}
    finally:
        while mlflow.active_run():
            mlflow.end_run()


def _kedro(project: Path, params: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "DO_NOT_TRACK": "true", "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    kedro = str(Path(sys.executable).with_name("kedro"))
    return subprocess.Popen(
        [kedro, "run", "--params", params],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


TINY_CLI = (
    "feature_ingestion.feature_dim=8,model.feature_dim=8,model.attention_hidden=16,"
    "training.max_seqlen=64,training.progress=false,"
    "evaluation.test_curve_every=0,training.interval=100000,training.max_iter=100000"
)


def _wait_for_lock(path: Path, pid: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        text = path.read_text() if path.exists() else ""
        if text and json.loads(text)["pid"] == pid:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path}: run {pid} never took the lock")


def test_second_concurrent_kedro_run_stops_in_one_line_and_sigterm_marks_killed(tmp_path):
    project = copy_project(tmp_path)
    pending_synthetic_set("Thumos14reduced", {"feature_dim": 8}).write(
        project / "data/01_raw/synthetic"
    )
    lock = project / run_guard.LOCK_FILE
    first = _kedro(project, TINY_CLI + ",training.seed=2")
    try:
        _wait_for_lock(lock, first.pid, first, timeout=240)
        second = _kedro(project, TINY_CLI + ",training.seed=1")
        _, err = second.communicate(timeout=240)
        assert second.returncode == 1, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines[-1].startswith("Error: ") and f"in use by pid {first.pid} (started" in err
        assert "training.seed=2" in lines[-1] and "Traceback" not in err
        assert first.poll() is None  # the first run is untouched
        time.sleep(2)  # let the first run's MLflow run be opened (it holds the lock already)
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
        assert first.returncode == 128 + signal.SIGTERM
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    runs = find_runs(project)
    # the refused run opened no MLflow run; the terminated one says KILLED, at once
    assert [r.info.status for r in runs] == ["KILLED"]
    assert runs[0].data.params["training.seed"] == "2"
