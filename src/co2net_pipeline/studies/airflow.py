"""A study (seeds or ablations) as independent Kedro runs that an orchestrator dispatches.

The Airflow DAGs that `kedro airflow create --env airflow` writes from
`conf/airflow/dag_template.j2` (`make airflow-dag`) have one task per configuration of a study;
each task calls `run_configuration`: ONE fresh `KedroSession` running the `train_eval` pipeline
with that configuration's parameters as runtime params (a seed sets `training.seed` and
`snippet_sampling.seed`, as the train_eval_seeds pipeline does; an ablation applies its
`studies.ablations.<name>` overrides). Tasks share nothing but the project's configuration and
input features (read-only) and the MLflow tracking server, so any executor may place them on
different machines. A last task, `collect_runs`, tabulates their MLflow runs.

Each run is a top-level MLflow run that this module opens (kedro-mlflow then logs into it
instead of opening its own), named `<study>/<configuration>` and tagged `study`,
`configuration`, `seed` or `ablation_group` and whatever the caller adds (the DAG adds
`orchestrator=airflow`, `airflow_dag_id`, `airflow_run_id`). Its catalog outputs and
checkpoints go to `<run_root>/<study>/<configuration>/` (default
`<project>/data/airflow_runs/`), so runs that share a disk do not overwrite each other's (or
train_eval's) files.

This module imports no heavy package at the top: the DAG file imports it when Airflow parses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from co2net_pipeline.common.atomic import atomic_write
from co2net_pipeline.params.overrides import (
    as_list,
    configuration_name,
    configuration_overrides,
    merge_overrides,
)
from co2net_pipeline.studies.in_process import mean_std

logger = logging.getLogger(__name__)

PROJECT_DIR_ENV = "CO2NET_PROJECT_DIR"
DEFAULT_RUN_ROOT = "data/airflow_runs"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_PACKAGE = __name__.split(".")[0]


def project_dir(project_path: str | Path | None = None) -> Path:
    """The project root: `project_path`, else `$CO2NET_PROJECT_DIR`, else the working directory
    (where kedro-airflow's own DAGs expect the worker to start)."""
    return Path(project_path or os.environ.get(PROJECT_DIR_ENV) or Path.cwd()).resolve()


def study_configurations(study: str, configurations: Any) -> list[tuple[str, Any]]:
    """(name, value) of every configuration of a DAG, in order; a list or a whitespace-separated
    string (`kedro airflow create --params "seeds=1 2 3"`)."""
    values = as_list(configurations)
    if not values:
        raise ValueError(f"{study}: no configuration to run (conf/airflow/airflow.yml)")
    pairs = [(configuration_name(study, v), v) for v in values]
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"{study}: duplicate configurations {names}")
    return pairs


def _config_loader(conf_source: Path, env: str | None, runtime_params: Mapping[str, Any] | None):
    from kedro.framework.project import configure_project, settings

    configure_project(_PACKAGE)
    return settings.CONFIG_LOADER_CLASS(
        conf_source=str(conf_source),
        env=env,
        runtime_params=dict(runtime_params or {}),
        **settings.CONFIG_LOADER_ARGS,
    )


def raw_data_locations(
    loader, project: Path, runtime_params: Mapping[str, Any] | None
) -> dict[str, str]:
    """The raw inputs' paths (globals `raw_data`, then the runtime params) made absolute against
    the project: the run's own project path is its output folder, against which Kedro would
    resolve the catalog's relative paths."""
    raw = merge_overrides(
        (loader["globals"] or {}).get("raw_data") or {},
        (runtime_params or {}).get("raw_data") or {},
    )
    return {
        key: str(project / raw[key])
        for key in ("features", "annotations")
        if raw.get(key) is not None and "://" not in str(raw[key])
    }


def _mlflow_settings(loader, project: Path, tracking_uri: str | None) -> tuple[str, str]:
    """(tracking URI, experiment): `tracking_uri`, else $MLFLOW_TRACKING_URI, else mlflow.yml's;
    a relative sqlite path is made absolute against the project (every run must hit one DB)."""
    from kedro.config import MissingConfigException

    loader.config_patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])
    try:
        conf = loader["mlflow"] or {}
    except MissingConfigException:
        conf = {}
    uri = (
        tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or (conf.get("server") or {}).get("mlflow_tracking_uri")
        or DEFAULT_TRACKING_URI
    )
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not Path(uri[len(prefix) :]).is_absolute():
        uri = prefix + str(project / uri[len(prefix) :])
    experiment = ((conf.get("tracking") or {}).get("experiment") or {}).get("name") or "co2net"
    return uri, experiment


def _study_dir(project: Path, run_root: str | Path | None, study: str) -> Path:
    root = Path(run_root or DEFAULT_RUN_ROOT)
    return (root if root.is_absolute() else project / root) / study


def run_configuration(
    study: str,
    configuration: Any,
    *,
    project_path: str | Path | None = None,
    pipeline: str = "train_eval",
    kedro_env: str | None = None,
    conf_source: str | Path | None = None,
    tracking_uri: str | None = None,
    run_root: str | Path | None = None,
    runtime_params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """One independent `kedro run --pipeline=<pipeline>` of one configuration; returns its MLflow
    run id.

    study: `seeds` (configuration: a seed) or `ablations` (configuration: a name in
    `studies.ablations`). runtime_params: parameters for every run of the study (for example
    the features' path on shared storage); the configuration's overrides apply on top.
    conf_source, run_root: relative to the project (defaults `conf`, `data/airflow_runs`). The
    working directory is the project root during the run, and relative raw-data paths
    (`raw_data.features`) mean what they mean for `kedro run` (`raw_data_locations`); the catalog's
    outputs and the checkpoints go to `<run_root>/<study>/<name>/`, emptied first (a retry
    starts afresh). See the module docstring for the MLflow run.
    """
    import mlflow
    from kedro.framework.session import KedroSession

    project = project_dir(project_path)
    conf = project / (conf_source or "conf")
    loader = _config_loader(conf, kedro_env, runtime_params)
    base = loader["parameters"]
    name, overrides, config_tags = configuration_overrides(
        base.get("studies") or {}, study, configuration
    )
    if study == "seeds":
        from co2net_pipeline.method.sampler import split_seed

        # The held-out split stays the base configuration's, as in train_eval_seeds.
        overrides["snippet_sampling"]["split_seed"] = split_seed(base["snippet_sampling"])
    uri, experiment = _mlflow_settings(loader, project, tracking_uri)

    run_dir = _study_dir(project, run_root, study) / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    params = merge_overrides(
        merge_overrides(runtime_params or {}, overrides),
        {
            "training": {"checkpoint_dir": str(run_dir / "checkpoints")},
            "raw_data": raw_data_locations(loader, project, runtime_params),
        },
    )
    run_tags = {"study": study, "configuration": name, **config_tags, **dict(tags or {})}
    logger.info("%s/%s: kedro run --pipeline=%s, outputs in %s", study, name, pipeline, run_dir)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    with (
        contextlib.chdir(project),
        mlflow.start_run(run_name=f"{study}/{name}", tags=run_tags) as run,
        KedroSession.create(
            project_path=run_dir, env=kedro_env, conf_source=str(conf), runtime_params=params
        ) as session,
    ):
        session.run(pipeline_names=[pipeline])
    logger.info("%s/%s: MLflow run %s at %s", study, name, run.info.run_id, uri)
    return run.info.run_id


def collect_runs(
    study: str,
    run_ids: Sequence[str],
    *,
    project_path: str | Path | None = None,
    kedro_env: str | None = None,
    conf_source: str | Path | None = None,
    tracking_uri: str | None = None,
    run_root: str | Path | None = None,
) -> str:
    """The study's runs side by side (`tracking.compare_runs`: parameters that differ, then the
    detection metrics; one column per configuration, plus `mean` and `std` of each metric for
    seeds), printed and written to `<run_root>/<study>/runs.csv`, whose path it returns."""
    import pandas as pd

    from co2net_pipeline.tracking.records import compare_runs
    from co2net_pipeline.tracking.runs import search_runs

    project = project_dir(project_path)
    conf = project / (conf_source or "conf")
    uri, experiment = _mlflow_settings(_config_loader(conf, kedro_env, None), project, tracking_uri)
    run_ids = list(run_ids)
    runs = search_runs(experiment, uri, run_ids).set_index("run_id").loc[run_ids].reset_index()
    params, metrics = compare_runs(runs)
    names = runs["tags.configuration"].tolist()
    params.columns = metrics.columns = names
    if study == "seeds" and len(names) > 1:
        mean, std = mean_std(metrics.T, list(metrics.index))
        metrics["mean"], metrics["std"] = mean, std
    table = pd.concat({"param": params.astype(str), "metric": metrics})
    path = _study_dir(project, run_root, study) / "runs.csv"
    atomic_write(path, table.to_csv)  # a reader never sees half a table
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        logger.info("%s: %d runs\n%s", study, len(names), table.to_string())
    return str(path)
