"""Test-wide settings: no telemetry, headless plotting, deterministic threads."""

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
