"""Test-wide settings: no telemetry, headless plotting, deterministic threads."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    # `make gpu-check` runs `pytest -m cuda`; without a GPU these tests skip themselves.
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (run by make gpu-check)")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, and a second OpenMP thread stalls badly when
    other processes share the cores (1 s instead of 0.01 s per step on a busy 2-core box)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def viz_build(tmp_path_factory) -> Path:
    """`kedro viz build` of a project copy (the static site kedro viz serves), built once for
    every test that reads it."""
    from kedro_helpers import copy_project

    project = copy_project(tmp_path_factory.mktemp("viz_project"))
    env = {**os.environ, "DO_NOT_TRACK": "true", "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return project / "build"


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """`(folder, real)`: a 5 MiB tmpfs at `folder` when this process may mount (root), unmounted
    after the test; elsewhere a plain folder whose file system reports 5 MiB free (simulated:
    `shutil.disk_usage` is patched, so only the free-space checks see a full disk)."""
    import shutil

    folder = tmp_path / "small_disk"
    folder.mkdir()
    mounted = os.geteuid() == 0 and shutil.which("mount") is not None
    if mounted:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(folder)], capture_output=True
        )
        mounted = done.returncode == 0
    if not mounted:
        real_usage = shutil.disk_usage

        def usage(path):
            found = real_usage(path)
            inside = Path(path).resolve().is_relative_to(folder.resolve())
            return found._replace(free=5 * 2**20) if inside else found

        monkeypatch.setattr(shutil, "disk_usage", usage)
    try:
        yield folder, mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


@contextlib.contextmanager
def _restored_mlflow_globals():
    """MLflow keeps the tracking URI and the active experiment in module globals and in
    MLFLOW_EXPERIMENT_ID; a test (or a module's fixture) that sets them must not steer later
    tests' runs."""
    names = ("MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI")
    before = {name: os.environ.get(name) for name in names}
    fluent = sys.modules.get("mlflow.tracking.fluent")
    uri = sys.modules["mlflow"].get_tracking_uri() if fluent else None
    experiment = fluent._active_experiment_id if fluent else None
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    fluent = sys.modules.get("mlflow.tracking.fluent")
    if fluent is not None:
        fluent._active_experiment_id = experiment
        if uri is not None:
            sys.modules["mlflow"].set_tracking_uri(uri)


@pytest.fixture(autouse=True)
def _mlflow_globals_restored():
    with _restored_mlflow_globals():
        yield


@pytest.fixture(autouse=True, scope="module")
def _mlflow_globals_restored_after_module():
    with _restored_mlflow_globals():
        yield
