"""Before a tracked run: the MLflow store can take it, or the run stops in one line.

- A store the run cannot write (a read-only database or folder, a database locked by another
  process, a full disk, a file that is not a database) is one line before anything runs;
  MLflow itself fails mid-run with a 400-700-line traceback.
- A tracking server that does not answer within a few seconds is one line, instead of MLflow's
  minutes of silent retries.
- A local SQLite store that lacks the experiment is created under an exclusive lock: two first
  runs at once otherwise race in MLflow's schema migrations ("Online migration expected to
  match one row") or in creating the experiment.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from co2net_pipeline.common.run_lock import waiting_lock
from co2net_pipeline.tracking.runs import sqlite_store_path

__all__ = [
    "prepare_sqlite_store",
    "readable_store_problem",
    "server_problem",
    "sqlite_problem",
    "tracking_problem",
]

MIN_FREE_BYTES = 4 * 2**20  # a run's params, metrics and tags; artifacts are checked by size
LOCK_WAIT_S = 5.0  # how long a write lock held by another process may delay the check
SERVER_TIMEOUT_S = 5.0


def tracking_problem(uri: str | None) -> str | None:
    """What keeps a run from writing to `uri`, as one line; None when it can."""
    if not uri:
        return None
    db = sqlite_store_path(uri)
    if db is not None:
        return sqlite_problem(db)
    if uri.split(":", 1)[0] in ("http", "https"):
        return server_problem(uri)
    return None


def _folder_problem(db: Path) -> str | None:
    folder = db.absolute().parent
    if not folder.is_dir():
        return f"{db}: the MLflow database's folder {folder} does not exist"
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        return f"{db}: no space left on device for the MLflow database ({free // 1024} KiB free)"
    if not os.access(folder, os.W_OK | os.X_OK):  # SQLite writes its journal beside the file
        return f"{db}: cannot write the MLflow database, its folder {folder} is read-only"
    return None


def sqlite_problem(db: Path) -> str | None:
    """One line on a local SQLite store the run could not write to; None when it can."""
    problem = _folder_problem(db)
    if problem or not db.exists():
        return problem
    if not os.access(db, os.W_OK):
        return f"{db}: the MLflow database is read-only"
    try:
        con = sqlite3.connect(db, timeout=LOCK_WAIT_S)
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            con.execute("BEGIN IMMEDIATE")  # takes the write lock without writing
            con.rollback()
        finally:
            con.close()
    except sqlite3.Error as exc:
        if "locked" in str(exc):
            return (
                f"{db}: the MLflow database is locked by another process "
                f"(still after {LOCK_WAIT_S:.0f} s)"
            )
        return f"{db}: not a usable MLflow database ({exc})"
    return None


def readable_store_problem(db: Path) -> str | None:
    """One line when `db` is not an MLflow SQLite database a reader can open (0 bytes, another
    kind of file, locked); None when it is. Opened read-only: checking writes nothing."""
    if db.stat().st_size == 0:
        return f"{db}: not a readable MLflow database (an empty file)"
    try:
        con = sqlite3.connect(f"file:{db.absolute()}?mode=ro", uri=True, timeout=LOCK_WAIT_S)
        try:
            found = con.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'experiments'"
            ).fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        if "locked" in str(exc):
            return f"{db}: the MLflow database is locked by another process"
        return f"{db}: not a readable MLflow database ({exc})"
    return None if found else f"{db}: not a readable MLflow database (no experiments table)"


def server_problem(uri: str, timeout_s: float = SERVER_TIMEOUT_S) -> str | None:
    """One line when the tracking server at `uri` does not answer within `timeout_s`."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None  # it answers (an authentication wall, no /health route)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return (
            f"MLflow tracking server {uri} is unreachable ({reason}); start it, or set "
            "server.mlflow_tracking_uri in conf/<env>/mlflow.yml"
        )


def _has_experiment(db: Path, name: str) -> bool:
    if not db.is_file() or db.stat().st_size == 0:
        return False
    try:
        con = sqlite3.connect(f"file:{db.absolute()}?mode=ro", uri=True)
        try:
            found = con.execute("SELECT 1 FROM experiments WHERE name = ?", (name,)).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return found is not None


def prepare_sqlite_store(
    uri: str, experiment: str, lock_path: Path, create_kwargs: Mapping[str, Any] | None = None
) -> None:
    """Create the SQLite store of `uri` and its `experiment` if missing, one process at a time
    (`lock_path`); a no-op for other stores and for a store that has the experiment."""
    db = sqlite_store_path(uri)
    if db is None or _has_experiment(db, experiment):
        return
    with waiting_lock(lock_path):
        if _has_experiment(db, experiment):  # created by the process we waited for
            return
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        if client.get_experiment_by_name(experiment) is None:
            kwargs = dict(create_kwargs or {})
            client.create_experiment(
                experiment,
                artifact_location=kwargs.get("artifact_location"),
                tags=kwargs.get("tags"),
            )
