"""Temporaries of a writer killed with `kill -9` (no `finally` ran) are removed by later writes
of the same target; a live process's are kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli import run

from co2net_pipeline.common.atomic import atomic_directory, remove_stale_temps, temp_name
from co2net_pipeline.data.store import write_feature_store

sys.path.insert(0, str(Path(__file__).parent / "data"))
from data_helpers import make_annotations, make_features, write_wtalc  # noqa: E402


@pytest.fixture(scope="module")
def dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    pid = int(child.stdout)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid
    pytest.skip(f"pid {pid} was reused at once")


def _temp_of(path: Path, kind: str, pid: int) -> Path:
    name = temp_name(path, kind).name.replace(f"-{os.getpid()}-", f"-{pid}-", 1)
    return path.with_name(name)


def _leave(path: Path, folder: bool = False) -> Path:
    if folder:
        path.mkdir()
        (path / "store.h5").write_bytes(b"x" * 1000)
    else:
        path.write_bytes(b"x" * 1000)
    return path


def test_only_dead_writers_temporaries_of_that_target_go(tmp_path, dead_pid):
    target = tmp_path / "store.h5"
    dead = [
        _leave(_temp_of(target, "tmp", dead_pid)),
        _leave(_temp_of(target, "staging", dead_pid), folder=True),
    ]
    alive = _leave(_temp_of(target, "tmp", os.getppid()))
    ours = _leave(temp_name(target))
    other_target = _leave(_temp_of(tmp_path / "other.h5", "tmp", dead_pid))
    lookalike = _leave(tmp_path / f".store.h5.tmp-{dead_pid}-notahex.h5")
    assert sorted(remove_stale_temps(target)) == sorted(dead)
    assert not any(p.exists() for p in dead)
    assert all(p.exists() for p in (alive, ours, other_target, lookalike))


def test_a_missing_folder_removes_nothing(tmp_path):
    assert remove_stale_temps(tmp_path / "nope" / "store.h5") == []


def test_writing_a_store_removes_a_killed_writers_temporary(tmp_path, dead_pid):
    target = tmp_path / "store.h5"
    stale = _leave(_temp_of(target, "tmp", dead_pid))
    write_feature_store(target, {"v": np.zeros((3, 4), np.float32)}.items())
    assert target.is_file() and not stale.exists()


def test_atomic_directory_removes_a_killed_writers_folder(tmp_path, dead_pid):
    target = tmp_path / "synthetic"
    stale = _leave(_temp_of(target, "tmp", dead_pid), folder=True)
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("a")
    assert (target / "a.txt").is_file() and not stale.exists()


def test_co2net_ingest_removes_a_killed_ingestions_staging_folder(tmp_path, dead_pid):
    annotations = make_annotations()
    raw = write_wtalc(tmp_path / "raw", annotations, make_features(annotations))
    out = tmp_path / "out"
    out.mkdir()
    staging = _leave(_temp_of(out / "store.h5", "staging", dead_pid), folder=True)
    code, _, err = run(["ingest", "--features", str(raw), "--output", str(out / "store.h5")])
    assert code == 0, err
    assert (out / "store.h5").is_file() and not staging.exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_a_folder_moved_aside_by_a_killed_writer_is_moved_back(tmp_path, dead_pid):
    target = tmp_path / "synthetic"
    aside = _leave(_temp_of(target, "old", dead_pid), folder=True)
    assert remove_stale_temps(target) == []
    assert (target / "store.h5").read_bytes() == b"x" * 1000 and not aside.exists()
    stale_again = _leave(_temp_of(target, "old", dead_pid), folder=True)
    assert remove_stale_temps(target) == [stale_again]  # the target is there: a leftover
