"""`python -m co2net_pipeline` and the installed `co2net-pipeline` script run the project like
`kedro run` (issue 24: both failed with "module 'co2net_pipeline.cli' has no attribute 'run'")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "DO_NOT_TRACK": "true", "NO_COLOR": "1"}


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "co2net_pipeline"],
        [str(Path(sys.executable).with_name("co2net-pipeline"))],
    ],
)
def test_module_and_script_are_kedro_run(command):
    done = subprocess.run(
        [*command, "--help"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Run the pipeline." in done.stdout and "--pipelines" in done.stdout


def test_outside_a_project_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "co2net_pipeline"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"Error: {tmp_path} is not in a Kedro project; run this from the project folder"
    )
