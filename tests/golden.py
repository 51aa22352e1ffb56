"""Locating golden cases: `CO2NET_GOLDEN_DIR`, default the vendored `tests/goldens/`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VENDORED = Path(__file__).resolve().parent / "goldens"


def golden_dir() -> Path:
    configured = os.environ.get("CO2NET_GOLDEN_DIR")
    if configured:
        path = Path(configured)
        return path if path.is_absolute() else (Path.cwd() / path).resolve()
    return VENDORED


def golden_cases(kind: str) -> list:
    """One pytest param per case folder under `<golden>/<kind>/`.

    A missing or empty folder is an error, not a skip: a suite that silently loses its golden
    cases would pass without checking anything.
    """
    root = golden_dir() / kind
    cases = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not cases:
        raise FileNotFoundError(
            f"no golden cases under {root}: restore tests/goldens/ or fix CO2NET_GOLDEN_DIR"
        )
    return [pytest.param(case, id=case.name) for case in cases]
