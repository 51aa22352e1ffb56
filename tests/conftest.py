"""Test-wide settings: no telemetry, headless plotting, deterministic threads."""

import os

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
