"""What a tracked `kedro run` records in MLflow beyond the catalog: provenance, a readable run
name and tags, the experiment kind, a logged model, and the clean-up of runs killed earlier."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from kedro.framework.hooks import hook_impl

from co2net_pipeline.params.overrides import flatten

logger = logging.getLogger(__name__)

# The MLflow UI opens an experiment in its GenAI view unless this tag says otherwise.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# Tags that let the next run tell whether this one's process still lives (`mark_killed_runs`).
PID_TAG = "pid"
HOST_TAG = "hostname"
# Parameters whose value names the run (`run_name`); the sampling seed follows the training one.
SEED_PARAM = "training.seed"
_SEED_KEYS = {SEED_PARAM, "snippet_sampling.seed"}
_MAX_RUN_NAME = 250  # MLflow's limit on run names
_OBJECT_REPR = re.compile(r"^<(?:[\w]+\.)*(\w+) object at 0x[0-9a-fA-F]+>$")


def git_commit(project_path: Path) -> str:
    """The checked-out commit (with `-dirty` when the tree has changes), or `unknown`."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=project_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def run_name(
    pipeline: str,
    seed: Any = None,
    env: str | None = None,
    runtime_params: Mapping[str, Any] | None = None,
) -> str:
    """`<pipeline>/<seed and configuration>`, e.g. `train_eval/seed=1,env=thumos14`.

    The configuration is the Kedro environment (unless `local`/`base`) and every `--params`
    override but the seeds, in the order given; truncated to MLflow's 250 characters.
    """
    parts = [] if seed is None else [f"seed={seed}"]
    if env and env not in ("local", "base"):
        parts.append(f"env={env}")
    for key, value in flatten(runtime_params or {}).items():
        if key not in _SEED_KEYS:
            shown = " ".join(map(str, value)) if isinstance(value, list | tuple) else value
            parts.append(f"{key}={shown}")
    name = f"{pipeline}/{','.join(parts)}" if parts else pipeline
    return name if len(name) <= _MAX_RUN_NAME else name[: _MAX_RUN_NAME - 1] + "…"


def readable_runner(runner: Any) -> str:
    """`SequentialRunner` for Kedro's `<kedro.runner...SequentialRunner object at 0x...>`."""
    text = str(runner)
    if text == "None":  # `session.run()` without a runner: Kedro's default
        return "SequentialRunner"
    match = _OBJECT_REPR.match(text)
    return match.group(1) if match else text


def process_alive(pid: int, started_before_s: float | None = None) -> bool:
    """Whether process `pid` exists on this host (and, when `started_before_s` is given, was
    started by then: a newer process reusing the pid is not the one that opened the run)."""
    import psutil

    try:
        process = psutil.Process(pid)
        created = process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True
    # create_time has ~10 ms resolution; a second of slack
    return started_before_s is None or created <= started_before_s + 1.0


def mark_killed_runs(client, experiment_id: str, keep: str | None = None) -> list[str]:
    """Mark KILLED the RUNNING runs of the experiment whose process (tags `pid`, `hostname`)
    is gone from this host — a `kill -9` leaves them RUNNING forever — and the RUNNING runs
    nested under them. Runs of other hosts or without those tags are left alone.

    Returns the run ids marked, parents first.
    """
    host = socket.gethostname()
    running = client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    )
    killed: list[str] = []
    for run in running:  # loop over runs
        tags = run.data.tags
        if run.info.run_id == keep or tags.get(HOST_TAG) != host:
            continue
        try:
            pid = int(tags.get(PID_TAG, ""))
        except ValueError:
            continue
        if not process_alive(pid, run.info.start_time / 1000):
            killed.append(run.info.run_id)
    killed += [
        run.info.run_id
        for run in running
        if run.data.tags.get("mlflow.parentRunId") in killed and run.info.run_id not in killed
    ]
    for run_id in killed:
        client.set_terminated(run_id, "KILLED")
    if killed:
        logger.info(
            "MLflow: marked %d run(s) KILLED whose process is gone: %s",
            len(killed),
            ", ".join(r[:8] for r in killed),
        )
    return killed


def tag_experiment_kind(client, experiment_id: str) -> None:
    """Make the MLflow UI open the experiment on its runs table (not the GenAI view)."""
    experiment = client.get_experiment(experiment_id)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)


class ProjectHooks:
    """Runs after kedro-mlflow's hooks (trylast), on the run it opened; a no-op without one."""

    def __init__(self) -> None:
        self._context = None
        self._catalog = None
        self._log_model = False

    @hook_impl
    def after_context_created(self, context) -> None:
        self._context = context

    @hook_impl(tryfirst=True)
    def after_catalog_created(self, conf_catalog: dict) -> None:
        # before kedro-mlflow's, which replaces the metrics datasets
        from co2net_pipeline.kedro_glue import terminal

        terminal.expect_replaced_metrics(conf_catalog)

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        run = mlflow.active_run()
        self._catalog = catalog
        # training_ml logs its own model (kedro-mlflow's pipeline_ml_factory)
        self._log_model = run is not None and getattr(pipeline, "inference", None) is None
        if run is None or self._context is None:
            return
        client = MlflowClient()
        experiment_id = run.info.experiment_id
        tag_experiment_kind(client, experiment_id)
        mark_killed_runs(client, experiment_id, keep=run.info.run_id)
        params = self._context.params
        tags = run_tags(self._context, params, client, run, run_params, pipeline)
        if (source := ingested_data_source(catalog, pipeline)) is not None:
            tags["data_source"] = source
        mlflow.set_tags(tags)
        mlflow.log_text(
            yaml.safe_dump(_plain(params), sort_keys=True), "config/resolved_parameters.yml"
        )
        if raw := raw_inputs(catalog, pipeline.inputs()):
            mlflow.log_text(yaml.safe_dump(raw, sort_keys=True), "config/raw_inputs.yml")

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        if dataset_name != "trained_model" or not self._log_model or self._context is None:
            return
        import mlflow

        if mlflow.active_run() is None:
            return
        from co2net_pipeline.tracking.detector import example_frame, log_detector

        params = self._context.params
        example = example_frame(self._catalog.load("feature_store"))
        log_detector(data, example, params.get("inference", {}), params.get("proposals", {}))


def run_tags(context, params: Mapping, client, run, run_params: dict, pipeline) -> dict[str, str]:
    """Provenance, process and naming tags of the run kedro-mlflow opened; deletes its
    duplicate `run_id` tag (Kedro's session id, recorded as `kedro_session_id`). params: the
    context's (each read of `context.params` loads and validates them again)."""
    tags = {
        "git_commit": git_commit(Path(context.project_path)),
        "kedro_env": context.env or "local",
        PID_TAG: str(os.getpid()),
        HOST_TAG: socket.gethostname(),
        "runner": readable_runner(run_params.get("runner")),
    }
    # kedro-mlflow copies Kedro's run_params as tags; its `run_id` is Kedro's session id
    logged_tags = client.get_run(run.info.run_id).data.tags  # active_run() is a snapshot
    if logged_tags.get("run_id") == run_params.get("run_id"):
        client.delete_tag(run.info.run_id, "run_id")
    tags["kedro_session_id"] = str(run_params.get("run_id"))
    if "kedro_command" in logged_tags:  # kedro-mlflow writes the deprecated --pipeline=
        tags["kedro_command"] = logged_tags["kedro_command"].replace("--pipeline=", "--pipelines=")
    names = run_params.get("pipeline_names") or ["__default__"]
    # kedro-mlflow names the run after the pipeline(s); a run opened by an orchestrator
    # (or named in mlflow.yml) keeps its name
    if run.info.run_name == "+".join(names):
        pipeline_name = "+".join(_registered_name(n) for n in names)
        inputs = pipeline.inputs()
        # a study (params:studies) trains several seeds: its name carries none
        seeded = "params:training" in inputs and "params:studies" not in inputs
        seed = flatten(params).get(SEED_PARAM) if seeded else None
        tags["mlflow.runName"] = run_name(
            pipeline_name, seed, context.env, run_params.get("runtime_params")
        )
    return tags


def raw_inputs(catalog, inputs) -> dict[str, dict]:
    """The resolved catalog entries of the raw-layer inputs (type and paths), by name."""
    from co2net_pipeline.kedro_glue.datasets import raw_datasets

    return {
        name: {"type": type(dataset).__name__, **dataset._describe()}
        for name, dataset in sorted(raw_datasets(catalog, inputs).items())
    }


def _registered_name(name: str) -> str:
    """The registered pipeline `__default__` stands for (train_eval), else `name`."""
    if name != "__default__":
        return name
    from kedro.framework.project import pipelines

    default = pipelines.get("__default__")
    others = [n for n, p in pipelines.items() if n != "__default__" and p is default]
    return others[0] if others else name


def ingested_data_source(catalog, pipeline) -> str | None:
    """The `data_source` of the ingested data a run reads (its validation report says what was
    read), `unknown` without one; None when the run ingests: its ingestion node tags it."""
    if "validation_report" in pipeline.all_outputs():
        return None
    try:
        if "validation_report" in catalog and catalog.exists("validation_report"):
            return str(catalog.load("validation_report").get("data_source") or "unknown")
    except Exception:  # noqa: BLE001 - a provenance tag must never stop the run
        logger.debug("validation_report unreadable for the data_source tag", exc_info=True)
    return "unknown"


def _plain(value):
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
