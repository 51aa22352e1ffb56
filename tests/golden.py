"""Locating golden cases: `CO2NET_GOLDEN_DIR`, default `<project>/../shared/golden`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def golden_dir() -> Path:
    configured = os.environ.get("CO2NET_GOLDEN_DIR")
    if configured:
        path = Path(configured)
        return path if path.is_absolute() else (Path.cwd() / path).resolve()
    return (PROJECT_ROOT.parent / "shared" / "golden").resolve()


def golden_cases(kind: str) -> list:
    """One pytest param per case folder under `<golden>/<kind>/`; a skip when the folder is absent."""
    root = golden_dir() / kind
    if not root.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"golden folder {root} absent"))]
    cases = sorted(p for p in root.iterdir() if p.is_dir())
    return [pytest.param(case, id=case.name) for case in cases]
