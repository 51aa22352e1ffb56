"""No usage telemetry from the project's own commands (`co2net`, `co2net-pipeline`)."""

from __future__ import annotations

import os

# What Kedro's, MLflow's and other libraries' usage telemetry read to stay off.
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "true",
    "KEDRO_DISABLE_TELEMETRY": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


def telemetry_off() -> None:
    """Set `TELEMETRY_OFF` in the environment; a value the user set wins. MLflow reads it when
    imported and Kedro's plugin when a session starts, so a command calls this first."""
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
