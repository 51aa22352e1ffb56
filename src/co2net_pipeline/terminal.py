"""A quiet, readable terminal: known library noise filtered at its exact message, and plain
full-width log lines when the output is redirected.

`install()` runs from `settings.py`, i.e. once Kedro has configured logging from
`conf/logging.yml` and before any pipeline is imported. Kedro only lets `logging.yml` name
classes of `logging` and `kedro.logging`, so what needs code lives here.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings

# (category, message regex) of library warnings that say nothing to a user of this project.
KNOWN_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    # kedro-mlflow's KedroPipelineModel.predict has no type hints; MLflow warns when the class
    # is defined (importing the training_ml pipeline), colouring the message with ANSI codes.
    (UserWarning, r"(\x1b\[\d+m)?Add type hints to the `predict` method"),
    # Kedro 1.7 and kedro-mlflow 2.0.3 call OmegaConf.register_new_resolver themselves.
    (UserWarning, r"register_new_resolver\(\) is deprecated"),
)
# kedro-mlflow swaps every metrics dataset for its run-bound twin after the catalog is built
# (Kedro logs "Replacing dataset"); by this project's naming those datasets end in `_metrics`.
_REPLACED_METRICS = re.compile(r"^Replacing dataset '[\w.]+_metrics'")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class DropReplacedMetrics(logging.Filter):
    """Drops Kedro's "Replacing dataset '<x>_metrics'" caused by kedro-mlflow (see above)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _REPLACED_METRICS.match(record.getMessage())


def filter_known_warnings() -> None:
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def plain_logs_when_redirected(stream=None) -> bool:
    """Replace the root logger's rich handlers by one plain line-per-record handler when
    `stream` (stdout) is not a terminal: rich wraps redirected output at 80 columns.

    Returns whether it replaced anything.
    """
    stream = sys.stdout if stream is None else stream
    if stream.isatty():
        return False
    import rich.logging

    root = logging.getLogger()
    rich_handlers = [h for h in root.handlers if isinstance(h, rich.logging.RichHandler)]
    if not rich_handlers:
        return False
    plain = logging.StreamHandler(stream)
    plain.setFormatter(logging.Formatter(PLAIN_FORMAT))
    plain.setLevel(min(h.level for h in rich_handlers))
    for handler in rich_handlers:
        root.removeHandler(handler)
    root.addHandler(plain)
    return True


def install() -> None:
    """Everything above, idempotent."""
    filter_known_warnings()
    catalog_logger = logging.getLogger("kedro.io.data_catalog")
    if not any(isinstance(f, DropReplacedMetrics) for f in catalog_logger.filters):
        catalog_logger.addFilter(DropReplacedMetrics())
    plain_logs_when_redirected()
