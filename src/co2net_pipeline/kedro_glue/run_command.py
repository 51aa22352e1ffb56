"""`kedro run` as this project runs it: Kedro's own command and options, with two kinds of
failure that Kedro prints as 100-230-line tracebacks turned into one line.

- A `--params` value that is not YAML (a backtick, a `!!python/...` tag, an unclosed `[`) is a
  usage error naming the item, before the session starts (Kedro's `_split_params` parses it).
- The MLflow SQLite database deleted, moved or made read-only while the run writes to it
  (SQLite: "attempt to write a readonly database") names the database.

Kedro merges the commands of `<package>.cli`'s `cli` group over its own, so `cli.py` offers
this command as `run`. Built on first use: `co2net` never pays for importing Kedro's CLI.
`CO2NET_DEBUG=1` keeps the tracebacks.
"""

from __future__ import annotations

import copy
import functools
import logging
from typing import Any

import click

from co2net_pipeline.common.env import debug_enabled
from co2net_pipeline.kedro_glue.config_errors import yaml_problem

__all__ = [
    "ParamsValueError",
    "TrackingStoreLost",
    "checked_params",
    "project_run_command",
    "tracking_lost_line",
]

# SQLite's words when the file under an open connection was deleted, moved or chmod'ed.
_READONLY = "attempt to write a readonly database"


class ParamsValueError(click.ClickException):
    """A `--params` value YAML cannot read: one line, exit code 2 as the parameter check's."""

    exit_code = 2


class TrackingStoreLost(click.ClickException):
    """The MLflow database went away during the run: one line (exit code 1)."""


def checked_params(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Kedro's `--params` callback, with each `key=value` item parsed on its own first, so that
    a value YAML cannot read is one line naming the item."""
    from kedro.framework.cli.utils import _split_params, split_string
    from omegaconf import OmegaConf

    if not isinstance(value, dict):
        for item in split_string(ctx, param, value):
            if "=" not in item:
                continue  # Kedro's own message ("must contain a key and a value")
            try:
                OmegaConf.from_dotlist([item])
            except Exception as exc:  # noqa: BLE001 - yaml and omegaconf errors alike
                key = item.split("=", 1)[0].strip()
                raise ParamsValueError(
                    f"--params {item!r}: the value of {key} is not valid YAML "
                    f"({yaml_problem(exc)}); put a text value in single quotes: "
                    f"--params \"{key}='...'\""
                ) from None
    return _split_params(ctx, param, value)


def tracking_lost_line(error: BaseException, tracking_uri: str | None) -> str | None:
    """One line when `error` comes from the SQLite store of `tracking_uri` turning read-only
    under the run (deleted, moved or chmod'ed); None for any other error."""
    from co2net_pipeline.tracking.runs import sqlite_store_path

    seen, readonly = error, False
    while seen is not None and not readonly:
        readonly = _READONLY in str(seen)
        seen = seen.__cause__ or seen.__context__
    db = sqlite_store_path(tracking_uri) if tracking_uri else None
    if not readonly or db is None:
        return None
    what = "became read-only" if db.exists() else "was deleted or moved"
    return (
        f"{db.absolute()}: the MLflow database {what} while the run was writing to it, so "
        "the run is not recorded (SQLite: attempt to write a readonly database); restore it "
        "or remove it, and run again"
    )


def _current_tracking_uri() -> str | None:
    import sys

    if "mlflow" not in sys.modules:  # the run never reached MLflow
        return None
    import mlflow

    return mlflow.get_tracking_uri()


class _DropLostStoreRecords(logging.Filter):
    """Drops MLflow's ERROR record, with its ~90-line traceback, for each write to a SQLite
    file that went away (four per run); the run then ends with `tracking_lost_line`."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        lost = _READONLY in record.getMessage() or _READONLY in str(error or "")
        return debug_enabled() or not lost


LOST_STORE_RECORDS = _DropLostStoreRecords()


def _run_with_one_line_errors(callback):
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        mlflow_db = logging.getLogger("mlflow.store.db.utils")
        if LOST_STORE_RECORDS not in mlflow_db.filters:
            mlflow_db.addFilter(LOST_STORE_RECORDS)
        try:
            return callback(*args, **kwargs)
        except click.ClickException:
            raise
        except Exception as exc:
            line = None if debug_enabled() else tracking_lost_line(exc, _current_tracking_uri())
            if line:
                raise TrackingStoreLost(line) from exc
            raise

    return run


@functools.cache
def project_run_command() -> click.Command:
    """Kedro's `run` command (every option, its help), with `checked_params` and the one-line
    tracking error; the options are copies, Kedro's own command is left as it is."""
    from kedro.framework.cli.project import run as kedro_run

    params = []
    for option in kedro_run.params:
        option = copy.copy(option)
        if option.name == "params":
            option.callback = checked_params
        params.append(option)
    command = copy.copy(kedro_run)
    command.params = params
    command.callback = _run_with_one_line_errors(kedro_run.callback)
    return command
