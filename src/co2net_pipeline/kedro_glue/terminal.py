"""A quiet, readable terminal: known library noise filtered at its exact message, and plain
full-width log lines when the output is redirected.

Installed by one call, `terminal.install()` in `settings.py` (no entry point is registered): it
runs wherever Kedro loads this project's settings, once logging is configured from
`conf/logging.yml` and before any pipeline is imported. A warning issued earlier, while Kedro
loads its CLI plugins, is not filtered here. Kedro only lets `logging.yml` name classes of
`logging` and `kedro.logging`, so what needs code lives here.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings

# (category, message regex) of library warnings that say nothing to a user of this project.
KNOWN_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    # kedro-mlflow's KedroPipelineModel.predict has no type hints; MLflow warns when the class
    # is defined (kedro-mlflow's CLI plugin, the training_ml pipeline), in ANSI colour codes.
    (UserWarning, r"(\x1b\[\d+m)?Add type hints to the `predict` method"),
    # Kedro 1.7 and kedro-mlflow 2.0.3 call OmegaConf.register_new_resolver themselves.
    (UserWarning, r"register_new_resolver\(\) is deprecated"),
    # kedro-viz 12 imports FastAPI's ORJSONResponse (`kedro viz build` / `run`): a
    # FastAPIDeprecationWarning (a UserWarning) about kedro-viz's code, not ours.
    (UserWarning, r"ORJSONResponse is deprecated, FastAPI now serializes data directly"),
)
# (logger, message start) of library log records that say nothing to a user of this project.
KNOWN_RECORDS: tuple[tuple[str, str], ...] = (
    # kedro-mlflow 2.0.3, once per pipeline when kedro-viz lists training_ml's nodes
    (
        "kedro_mlflow.pipeline.pipeline_ml",
        "BEWARE - This 'Pipeline' is no longer a 'PipelineML' object. This method is only "
        "implemented for compatibility with kedro-viz",
    ),
)
_MLFLOW_METRICS = "kedro_mlflow.io.metrics."
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class DropReplacedMetrics(logging.Filter):
    """Drops Kedro's "Replacing dataset '<name>'" for the catalog's kedro-mlflow metrics
    datasets: kedro-mlflow swaps each for its run-bound twin once the catalog is built, on
    every run. `names` is filled from the catalog configuration (`hooks.ProjectHooks`)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith("Replacing dataset ")
            and message.removeprefix("Replacing dataset ").strip("'") in self.names
        )


REPLACED_METRICS = DropReplacedMetrics()


def expect_replaced_metrics(conf_catalog: dict) -> None:
    """Tell the filter which datasets of `conf_catalog` kedro-mlflow will replace."""
    REPLACED_METRICS.names.update(
        name
        for name, entry in conf_catalog.items()
        if isinstance(entry, dict) and str(entry.get("type", "")).startswith(_MLFLOW_METRICS)
    )


class DropKnownWarnings(logging.Filter):
    """Drops the KNOWN_WARNINGS that reach logging (Kedro's RichHandler captures warnings).

    Needed besides the warnings filters: MLflow issues the type-hint warning inside its own
    `catch_warnings()` + `simplefilter("once", UserWarning)`, which overrides any "ignore".
    """

    _patterns = tuple(re.compile(message) for _, message in KNOWN_WARNINGS)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.search(message) for p in self._patterns)


KNOWN_WARNINGS_FILTER = DropKnownWarnings()


class DropKnownRecords(logging.Filter):
    """Drops the log records of `KNOWN_RECORDS` whose message starts with the known text."""

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


def filter_known_records() -> None:
    for name, start in KNOWN_RECORDS:
        found = logging.getLogger(name)
        if not any(isinstance(f, DropKnownRecords) and f.start == start for f in found.filters):
            found.addFilter(DropKnownRecords(start))


def filter_known_warnings() -> None:
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    captured = logging.getLogger("py.warnings")
    if KNOWN_WARNINGS_FILTER not in captured.filters:
        captured.addFilter(KNOWN_WARNINGS_FILTER)


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever `sys.stdout` is at the time, as rich's console does (pytest and
    notebooks swap it; a handler bound to an old one would write to a closed stream)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


def plain_logs_when_redirected(stream=None) -> bool:
    """Replace the root logger's rich handlers by one plain line-per-record handler when
    `stream` (stdout) is not a terminal: rich wraps redirected output at 80 columns.

    Returns whether it replaced anything.
    """
    if (sys.stdout if stream is None else stream).isatty():
        return False
    import rich.logging

    root = logging.getLogger()
    rich_handlers = [h for h in root.handlers if isinstance(h, rich.logging.RichHandler)]
    if not rich_handlers:
        return False
    plain = logging.StreamHandler(stream) if stream is not None else _StdoutHandler()
    plain.setFormatter(logging.Formatter(PLAIN_FORMAT))
    plain.setLevel(min(h.level for h in rich_handlers))
    for handler in rich_handlers:
        root.removeHandler(handler)
    root.addHandler(plain)
    return True


def quiet_mlflow(redirected: bool) -> None:
    """MLflow sets its loggers to INFO when imported, over `conf/logging.yml`'s `mlflow:
    WARNING`; and its artifact progress bars fill redirected logs with carriage returns."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    if "mlflow" in sys.modules:  # imported already (by a Kedro plugin)
        logging.getLogger("mlflow").setLevel(os.environ["MLFLOW_LOGGING_LEVEL"].upper())
    if redirected:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def install() -> None:
    """Everything above, idempotent."""
    filter_known_warnings()
    filter_known_records()
    quiet_mlflow(redirected=not sys.stdout.isatty())
    catalog_logger = logging.getLogger("kedro.io.data_catalog")
    if REPLACED_METRICS not in catalog_logger.filters:
        catalog_logger.addFilter(REPLACED_METRICS)
    plain_logs_when_redirected()
