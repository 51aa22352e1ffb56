"""`kedro run`'s remaining tracebacks as one line: a `--params` value YAML cannot read, a
configuration file Kedro cannot load (an alias bomb in conf/local), a value it cannot resolve,
and the MLflow database deleted under a running run."""

from __future__ import annotations

import contextlib
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from kedro.config import OmegaConfigLoader
from kedro_helpers import copy_project, run_command

from co2net_pipeline import settings
from co2net_pipeline.cli import cli
from co2net_pipeline.kedro_glue.config_errors import config_problem
from co2net_pipeline.kedro_glue.run_command import (
    TrackingStoreLost,
    _run_with_one_line_errors,
    project_run_command,
    tracking_lost_line,
)

ALIAS_BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else 'lol'}]\n"
    for prev, name in zip([None, "a", "b", "c", "d", "e"], "abcdef", strict=True)
)


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ("training.seed=`x`", "found character that cannot start any token"),
        ("training.seed=!!python/name:os.system", "could not determine a constructor for the tag"),
        ("training.seed=[1", "did not find expected ',' or ']'"),
    ],
)
def test_a_params_value_yaml_cannot_read_is_one_line(item, problem):
    result = CliRunner().invoke(project_run_command(), ["--params", item])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(
        f"Error: --params {item!r}: the value of training.seed is not valid YAML"
    )
    assert problem in lines[0] and "Traceback" not in result.output


def test_the_project_run_is_kedros_run_with_every_option():
    from kedro.framework.cli.project import run as kedro_run

    ours = cli.get_command(None, "run")
    assert ours is project_run_command() and "run" in cli.list_commands(None)
    assert [p.name for p in ours.params] == [p.name for p in kedro_run.params]
    assert (
        next(p for p in kedro_run.params if p.name == "params").callback.__name__ == "_split_params"
    )


def _loader(conf: Path, runtime_params: dict | None = None) -> OmegaConfigLoader:
    return OmegaConfigLoader(
        str(conf), runtime_params=runtime_params, **settings.CONFIG_LOADER_ARGS
    )


def _conf(tmp_path: Path) -> Path:
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "local").mkdir()
    (tmp_path / "conf" / "base" / "parameters.yml").write_text("training:\n  seed: 1\n")
    return tmp_path / "conf"


def test_an_alias_bomb_in_conf_local_names_the_file(tmp_path):
    conf = _conf(tmp_path)
    (conf / "local" / "parameters_mine.yml").write_text(ALIAS_BOMB)
    line = config_problem(_loader(conf), "parameters")
    assert line == (
        f"{conf / 'local' / 'parameters_mine.yml'}: line 1: cannot read it "
        "(YAML node expansion exceeds the configured limit of 10000)"
    )


def test_a_python_tag_in_a_file_names_file_and_line(tmp_path):
    conf = _conf(tmp_path)
    (conf / "local" / "catalog.yml").write_text("x:\n  type: !!python/name:os.system\n")
    line = config_problem(_loader(conf), "catalog")
    assert line.startswith(f"{conf / 'local' / 'catalog.yml'}: line 2: cannot read it (could not")


def test_an_unresolvable_params_value_names_the_key(tmp_path):
    conf = _conf(tmp_path)
    loader = _loader(conf, {"training": {"seed": "${oc.env:HOME}"}})
    assert config_problem(loader, "parameters") == (
        "parameters training.seed: cannot be loaded (Unsupported interpolation type oc.env); "
        "a value may use ${globals:...} and ${runtime_params:...} only"
    )
    assert config_problem(_loader(conf), "parameters") is None


def test_kedro_run_with_an_alias_bomb_is_one_line(tmp_path):
    project = copy_project(tmp_path)
    (project / "conf" / "local" / "parameters.yml").write_text(ALIAS_BOMB)
    done = run_command(project, "kedro", "run", "--pipelines=training")
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-2000:]
    assert "Traceback" not in output and "╭" not in output, output[-2000:]
    assert (
        f"Error: {project / 'conf' / 'local' / 'parameters.yml'}: line 1: cannot read it" in output
    )


def test_kedro_run_with_a_backtick_in_params_is_one_line(tmp_path):
    project = copy_project(tmp_path)
    done = run_command(project, "kedro", "run", "--params", "training.seed=`x`")
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == "" and done.stderr.startswith("Error: --params 'training.seed=`x`'")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.fixture
def lost_store_error(tmp_path, monkeypatch):
    """The error MLflow raises when its SQLite file was deleted under an active run. The
    process's tracking URI is restored after, and no active experiment is left behind."""
    monkeypatch.chdir(tmp_path)
    uri, previous = f"sqlite:///{tmp_path / 'mlflow.db'}", mlflow.get_tracking_uri()
    experiment = mlflow.MlflowClient(uri).create_experiment("co2net")
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.start_run(experiment_id=experiment)
        (tmp_path / "mlflow.db").unlink()
        with pytest.raises(Exception) as info:
            mlflow.log_metric("loss", 1.0)
        while mlflow.active_run() is not None:
            with contextlib.suppress(Exception):  # the store is gone: only the stack is popped
                mlflow.end_run()
        yield info.value, uri, tmp_path / "mlflow.db"
    finally:
        mlflow.set_tracking_uri(previous)


def test_a_deleted_mlflow_database_is_one_line_naming_it(lost_store_error):
    error, uri, db = lost_store_error
    line = tracking_lost_line(error, uri)
    assert line.startswith(f"{db}: the MLflow database was deleted or moved while the run"), line
    assert "\n" not in line
    assert tracking_lost_line(ValueError("other"), uri) is None
    assert tracking_lost_line(error, "http://localhost:5000") is None


def test_the_run_command_turns_it_into_its_line(lost_store_error, monkeypatch):
    error, uri, db = lost_store_error
    monkeypatch.delenv("CO2NET_DEBUG", raising=False)
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: uri)

    def failing_run(**kwargs):
        raise error

    with pytest.raises(TrackingStoreLost, match=f"^{db}: the MLflow database was deleted"):
        _run_with_one_line_errors(failing_run)()
    monkeypatch.setenv("CO2NET_DEBUG", "1")
    with pytest.raises(type(error)):
        _run_with_one_line_errors(failing_run)()


def test_mlflows_traceback_records_of_the_lost_store_are_dropped(lost_store_error, monkeypatch):
    import logging

    from co2net_pipeline.kedro_glue.run_command import LOST_STORE_RECORDS

    error = lost_store_error[0]
    record = logging.LogRecord(
        "mlflow.store.db.utils",
        logging.ERROR,
        __file__,
        1,
        "SQLAlchemy database error.",
        None,
        (type(error), error, None),
    )
    other = logging.LogRecord(
        "mlflow.store.db.utils", logging.ERROR, __file__, 1, "database is locked", None, None
    )
    monkeypatch.delenv("CO2NET_DEBUG", raising=False)
    assert not LOST_STORE_RECORDS.filter(record) and LOST_STORE_RECORDS.filter(other)
    monkeypatch.setenv("CO2NET_DEBUG", "1")
    assert LOST_STORE_RECORDS.filter(record)
