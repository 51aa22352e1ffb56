"""The quiet terminal: known library warnings filtered at their exact message, kedro-mlflow's
dataset replacement unlogged, plain unwrapped log lines when the output is redirected."""

from __future__ import annotations

import io
import logging
import warnings

import pytest
from kedro.logging import RichHandler

from co2net_pipeline.kedro_glue import terminal


def test_known_library_warnings_are_filtered_and_others_kept():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        terminal.filter_known_warnings()
        for message, category in [
            ("\x1b[33mAdd type hints to the `predict` method to enable ...\x1b[0m", UserWarning),
            ("register_new_resolver() is deprecated and will be removed", UserWarning),
            ("something else", UserWarning),
            ("Add type hints to the `predict` method", DeprecationWarning),
        ]:
            warnings.warn(message, category, stacklevel=1)
    assert [str(w.message) for w in caught] == [
        "something else",
        "Add type hints to the `predict` method",
    ]


def test_known_warnings_reaching_logging_are_dropped():
    # MLflow warns inside simplefilter("once", UserWarning): only the logging filter sees it
    terminal.filter_known_warnings()
    keep = terminal.KNOWN_WARNINGS_FILTER.filter
    noisy = (
        ".../data_validation.py:187: UserWarning: \x1b[33mAdd type hints to the `predict` method"
    )
    assert not keep(_record("py.warnings", "%s", noisy))
    assert keep(_record("py.warnings", "%s", ".../x.py:1: UserWarning: something else"))
    assert terminal.KNOWN_WARNINGS_FILTER in logging.getLogger("py.warnings").filters


def _record(name: str, message: str, *args) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, None)


def test_only_the_replaced_mlflow_metrics_datasets_are_unlogged():
    terminal.expect_replaced_metrics(
        {
            "training_metrics": {"type": "kedro_mlflow.io.metrics.MlflowMetricsHistoryDataset"},
            "test_curve": {"type": "kedro_mlflow.io.metrics.MlflowMetricsHistoryDataset"},
            "videos": {"type": "pandas.ParquetDataset"},
            "_defaults": "not a dataset",
        }
    )
    keep = terminal.REPLACED_METRICS.filter
    assert not keep(_record("kedro.io.data_catalog", "Replacing dataset '%s'", "training_metrics"))
    assert not keep(_record("kedro.io.data_catalog", "Replacing dataset '%s'", "test_curve"))
    assert keep(_record("kedro.io.data_catalog", "Replacing dataset '%s'", "videos"))
    assert keep(_record("kedro.io.data_catalog", "Loading data from training_metrics"))


@pytest.fixture
def root_handlers():
    root = logging.getLogger()
    saved = root.handlers[:]
    yield root
    root.handlers[:] = saved


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_redirected_output_gets_plain_unwrapped_lines(root_handlers):
    root_handlers.handlers[:] = [RichHandler(level=logging.INFO)]
    out = io.StringIO()
    assert terminal.plain_logs_when_redirected(out)
    (handler,) = root_handlers.handlers
    assert not isinstance(handler, RichHandler) and handler.level == logging.INFO
    long = "feature ingestion: " + "x" * 200
    handler.handle(logging.LogRecord("co2net_pipeline", logging.INFO, __file__, 1, long, (), None))
    (line,) = out.getvalue().splitlines()
    assert line.endswith("INFO co2net_pipeline: " + long)


def test_the_plain_handler_follows_sys_stdout(root_handlers, monkeypatch):
    root_handlers.handlers[:] = [RichHandler(level=logging.INFO)]
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert terminal.plain_logs_when_redirected()
    (handler,) = root_handlers.handlers
    later = io.StringIO()
    monkeypatch.setattr("sys.stdout", later)  # pytest or a notebook swapping stdout
    handler.handle(logging.LogRecord("x", logging.INFO, __file__, 1, "after the swap", (), None))
    assert later.getvalue().rstrip().endswith("INFO x: after the swap")


def test_a_terminal_keeps_the_rich_handler(root_handlers):
    rich = RichHandler()
    root_handlers.handlers[:] = [rich]
    assert not terminal.plain_logs_when_redirected(_Tty())
    assert root_handlers.handlers == [rich]
