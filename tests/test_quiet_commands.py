"""No telemetry from the project's own commands and no known library notices (issue 22)."""

from __future__ import annotations

import logging
import os
import warnings

from kedro_helpers import copy_project, run_command

from co2net_pipeline.cli import main
from co2net_pipeline.common.telemetry import TELEMETRY_OFF
from co2net_pipeline.kedro_glue import terminal


def test_co2net_turns_telemetry_off_unless_the_user_chose(monkeypatch, capsys):
    for name in TELEMETRY_OFF:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DO_NOT_TRACK", "1")  # the user's own value is kept
    assert main(["--version"]) == 0
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["KEDRO_DISABLE_TELEMETRY"] == "true"
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_co2net_pipeline_runs_without_telemetry_messages(tmp_path):
    """`co2net-pipeline` (the project's `kedro run`) with no opt-out variable set: no consent
    line, no attempt to send usage data."""
    project = copy_project(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_OFF}
    env["HOME"] = str(tmp_path / "home")  # no telemetry consent stored for this user
    done = run_command(
        project,
        "co2net-pipeline",
        *["--pipelines=feature_ingestion", "--params=feature_ingestion.no_such_key=1"],
        env=env,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-2000:]  # stopped by the parameter check, as expected
    assert "feature_ingestion.no_such_key: unknown parameter" in output
    assert "telemetry" not in output.lower() and "Heap" not in output
    assert not (tmp_path / "home/.config/kedro/telemetry.toml").exists()


def test_known_library_notices_are_dropped_at_their_exact_text(caplog):
    terminal.install()
    beware = logging.getLogger("kedro_mlflow.pipeline.pipeline_ml")
    with caplog.at_level(logging.WARNING):
        beware.warning(
            "BEWARE - This 'Pipeline' is no longer a 'PipelineML' object. This method is only "
            "implemented for compatibility with kedro-viz and pipeline resume hints on failure."
        )
        beware.warning("BEWARE - something else")  # not the known text: kept
        logging.getLogger("py.warnings").warning(
            "x.py:12: FastAPIDeprecationWarning: ORJSONResponse is deprecated, FastAPI now "
            "serializes data directly to JSON bytes via Pydantic"
        )
    assert [r.getMessage() for r in caplog.records] == ["BEWARE - something else"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        terminal.filter_known_warnings()
        warnings.warn(
            "ORJSONResponse is deprecated, FastAPI now serializes data directly to JSON",
            UserWarning,
            stacklevel=1,
        )
    assert seen == []
