"""One `kedro run` per project at a time, and interrupted runs recorded as KILLED (issue 24)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from kedro.io import DatasetError
from kedro_helpers import copy_project, find_runs

from co2net_pipeline.common.disk_space import DiskFullError
from co2net_pipeline.common.run_lock import LockHeld, ProjectLock
from co2net_pipeline.data.synthetic import pending_synthetic_set
from co2net_pipeline.kedro_glue import run_guard
from co2net_pipeline.tracking import store_check

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
    "evaluation.test_curve_every=0,training.interval=20000,training.max_iter=20000"
)


def _wait_for_running_run(project: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (project / "mlflow.db").exists() and find_runs(project, "status = 'RUNNING'"):
            return
        time.sleep(0.5)
    raise AssertionError("the run holding the lock never opened its MLflow run")


def _wait_for_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path}: never written")
        time.sleep(0.2)


def test_two_concurrent_kedro_runs_one_stops_in_one_line_and_sigterm_marks_killed(tmp_path):
    """Two `kedro run` with different seeds started together: whichever takes the lock trains,
    the other stops in one line naming it; SIGTERM then marks the running one KILLED."""
    project = copy_project(tmp_path)
    pending_synthetic_set("Thumos14reduced", {"feature_dim": 8}).write(
        project / "data/01_raw/synthetic"
    )
    runs = {seed: _kedro(project, f"{TINY_CLI},training.seed={seed}") for seed in (1, 2)}
    try:
        deadline = time.monotonic() + 300
        while all(p.poll() is None for p in runs.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
        (lost,) = [seed for seed, p in runs.items() if p.poll() is not None]
        (won,) = {1, 2} - {lost}
        err = runs[lost].communicate()[1]
        assert runs[lost].returncode == 1, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines[-1].startswith("Error: ") and "Traceback" not in err
        assert f"in use by pid {runs[won].pid} (started" in lines[-1]
        assert f"training.seed={won}" in lines[-1]
        _wait_for_running_run(project, timeout=60)
        assert runs[won].poll() is None  # the winner is untouched
        _wait_for_file(project / "data/03_primary/videos.parquet", timeout=60)  # ingested
        runs[won].send_signal(signal.SIGTERM)
        runs[won].communicate(timeout=60)
        assert runs[won].returncode == 128 + signal.SIGTERM
    finally:
        for process in runs.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    tracked = find_runs(project)
    # the refused run opened no MLflow run; the terminated one says KILLED, at once
    assert [r.info.status for r in tracked] == ["KILLED"]
    assert tracked[0].data.params["training.seed"] == str(won)
    # and its catalog outputs were rolled back: the files it created are gone, no backup left
    data = project / "data"
    assert not (data / "03_primary/videos.parquet").exists()
    assert not (data / "02_intermediate/feature_store.h5").exists()
    assert not [p for p in data.rglob("*") if ".bak-" in p.name]


# ------------------------------------------------------------------------------------------
# The MLflow store, checked before the run (tracking.store_check)


def test_locked_or_foreign_sqlite_store_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(store_check, "LOCK_WAIT_S", 0.2)
    db = tmp_path / "mlflow.db"
    assert store_check.sqlite_problem(db) is None  # created by the run
    holder = sqlite3.connect(db)
    holder.execute("CREATE TABLE t (x)")
    holder.commit()
    assert store_check.sqlite_problem(db) is None
    holder.execute("BEGIN IMMEDIATE")  # another process mid-write
    try:
        assert store_check.sqlite_problem(db) == (
            f"{db}: the MLflow database is locked by another process (still after 0 s)"
        )
    finally:
        holder.rollback()
        holder.close()
    db.write_bytes(b"not a database, but 64 bytes of something else entirely........")
    assert store_check.sqlite_problem(db) == (
        f"{db}: not a usable MLflow database (file is not a database)"
    )


def test_read_only_or_full_store_is_one_line(small_disk, monkeypatch):
    folder, real = small_disk
    db = folder / "mlflow.db"
    sqlite3.connect(db).close()
    db.write_bytes(b"")
    monkeypatch.setattr(store_check, "MIN_FREE_BYTES", 6 * 2**20)  # more than the 5 MiB disk
    assert store_check.sqlite_problem(db).startswith(f"{db}: no space left on device")
    monkeypatch.setattr(store_check, "MIN_FREE_BYTES", 2**20)
    if real:  # root writes any file: only a read-only file system stops it
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        expected = f"{db}: cannot write the MLflow database, its folder {folder} is read-only"
    else:
        db.chmod(0o444)
        expected = f"{db}: the MLflow database is read-only"
    assert store_check.sqlite_problem(db) == expected


def test_unreachable_tracking_server_is_one_line_in_seconds():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    problem = store_check.tracking_problem(f"http://127.0.0.1:{port}")
    assert time.monotonic() - started < store_check.SERVER_TIMEOUT_S + 1
    assert problem.startswith(f"MLflow tracking server http://127.0.0.1:{port} is unreachable (")
    assert "\n" not in problem


PREPARE = """
import sys
from pathlib import Path
from co2net_pipeline.tracking.store_check import prepare_sqlite_store
prepare_sqlite_store(sys.argv[1], "co2net", Path(sys.argv[2]), {"tags": {"k": "v"}})
"""


def test_two_first_runs_create_the_store_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    args = [sys.executable, "-c", PREPARE, uri, str(tmp_path / ".setup.lock")]
    both = [subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    errors = [p.communicate(timeout=180)[1] for p in both]
    assert [p.returncode for p in both] == [0, 0], errors  # MLflow alone races in migrations
    experiments = mlflow.MlflowClient(uri).search_experiments(filter_string="name = 'co2net'")
    assert len(experiments) == 1 and experiments[0].tags["k"] == "v"


def test_a_full_disk_ends_the_run_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("CO2NET_DEBUG", raising=False)
    target = tmp_path / "data/07_model_output/detections.json"
    try:
        try:
            raise DiskFullError(target)
        except DiskFullError as exc:
            raise DatasetError("Failed while saving data to dataset\nsecond line") from exc
    except DatasetError as error:
        wrapped = error
    with pytest.raises(run_guard.DiskFullRunError) as info:
        run_guard.DiskFullHook().on_pipeline_error(wrapped, {}, None, None)
    assert info.value.format_message() == f"{target}: no space left on device"
    run_guard.DiskFullHook().on_pipeline_error(ValueError("other"), {}, None, None)  # not ours
