"""Fail fast: the Kedro environment and every parameter a run reads are checked before the first
node runs, so a typo costs seconds, not a training run (and no output is overwritten).

On the command line (`kedro run`) a problem is one line, `Error: <problem>`, exit code 2; with
`CO2NET_DEBUG=1` it is raised as a plain exception with its traceback. Unusable input data found
during the run (a feature file that is not one, a video of the wrong width) is one line too,
exit code 1 (`on_pipeline_error`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import click
from kedro.framework.hooks import hook_impl

from co2net_pipeline.common.env import debug_enabled
from co2net_pipeline.data.errors import DataValidationError
from co2net_pipeline.data.safe_npy import UnsafeNpyError
from co2net_pipeline.kedro_glue.config_errors import config_problem


class ConfigurationError(click.ClickException, ValueError):
    """A user's configuration mistake: click prints it as one line (exit code 2) in `kedro run`,
    and it is a ValueError for Python callers (`KedroSession.run`)."""

    exit_code = 2


class DataInputError(click.ClickException, DataValidationError):
    """Unusable input data: one line in `kedro run` (exit code 1), a DataValidationError for
    Python callers."""


def _debug() -> bool:
    return debug_enabled()


def data_error_line(error: BaseException, features: str | None = None) -> str | None:
    """The problem with the input data in `error`'s chain, as one line naming the dataset that
    failed to load (when one did), the file, the video and the problem; None for other errors.
    features: the raw features dataset, named for a feature file that breaks while a node
    reads it (a truncated W-TALC file)."""
    from co2net_pipeline.data.formats import FeatureFormatError

    dataset, seen = None, error
    while seen is not None:
        loading = re.match(r"(\w+): Failed while loading data", str(seen))
        if dataset is None and loading:
            dataset = loading.group(1)
        if dataset is None and isinstance(seen, FeatureFormatError):
            dataset = features
        if isinstance(seen, DataValidationError | UnsafeNpyError) or (
            dataset is not None
            and isinstance(seen, FileNotFoundError | ValueError)
            and not str(seen).startswith(f"{dataset}: Failed")
        ):
            line = " ".join(str(seen).split())
            return f"dataset {dataset!r}: {line}" if dataset else line
        seen = seen.__cause__ or seen.__context__
    return None


def _fail(message: str) -> None:
    from co2net_pipeline.params.schema import ParameterError

    if _debug():
        raise ParameterError(message)
    raise ConfigurationError(message)


def pipeline_groups(pipeline, extra: Iterable = ()) -> list[str]:
    """Parameter groups a pipeline reads (`params:<group>` or `params:<group>.<key>` inputs;
    `parameters` means all), including a kedro-mlflow PipelineML's inference part; `extra`:
    more pipelines (the registered ones a run combines)."""
    from co2net_pipeline.params.schema import GROUPS

    inputs = set(pipeline.inputs())
    for part in (pipeline, *extra):
        inference = getattr(part, "inference", None)
        if inference is not None:  # run when the logged model predicts, not by `kedro run`
            inputs |= set(inference.inputs())
    if "parameters" in inputs:
        return list(GROUPS)
    groups = {name[len("params:") :].split(".")[0] for name in inputs if name.startswith("params:")}
    return [g for g in GROUPS if g in groups] + sorted(groups - set(GROUPS))


class ParameterCheckHook:
    """`after_context_created`: the environment exists. `before_pipeline_run` (first of all
    hooks, before kedro-mlflow opens a run): the parameter groups of the selected pipeline and
    the rules between them (`co2net_pipeline.params.schema`)."""

    def __init__(self) -> None:
        self._context = None

    @hook_impl(tryfirst=True)
    def after_context_created(self, context) -> None:
        self._context = context
        drop_node_data_errors()
        env = context.env
        conf = Path(context.config_loader.conf_source)
        if env and not (conf / env).is_dir():
            known = sorted(p.name for p in conf.iterdir() if p.is_dir()) if conf.is_dir() else []
            _fail(
                f"Kedro environment {env!r} not found: {conf / env} is not a folder "
                f"(environments: {', '.join(known) or 'none'})"
            )
        for key in ("parameters", "catalog"):  # Kedro loads them later, with a traceback
            if problem := config_problem(context.config_loader, key):
                _fail(problem)

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        if self._context is None:
            return
        from kedro.framework.project import pipelines

        # here, not at import: the schema imports the method (torch), and Kedro imports this
        # module with the project's settings on every `kedro` command
        from co2net_pipeline.params.schema import ParameterError, validate_parameters

        params = self._context.config_loader["parameters"]
        names = run_params.get("pipeline_names") or ["__default__"]
        registered = [pipelines[name] for name in names if name in pipelines]
        groups = pipeline_groups(pipeline, registered)
        if "raw_data" in params:  # given for this run; the catalog's raw layer reads it
            runtime = getattr(self._context.config_loader, "runtime_params", None) or {}
            in_files = set(params["raw_data"] or {}) - set(runtime.get("raw_data") or {})
            if in_files:
                _fail(
                    f"raw_data.{sorted(in_files)[0]}: set in a parameters file, which the catalog "
                    "does not read; put raw_data in conf/<env>/globals.yml (or pass --params)"
                )
            groups.append("raw_data")
        try:
            parsed = validate_parameters(params, groups)
        except ParameterError as exc:
            _fail(str(exc))
        catalog_conf = dict(self._context.config_loader["catalog"])
        outputs = set(pipeline.all_outputs())
        if "training" in parsed:  # checkpoints are written under a parameter path
            folder = parsed["training"].checkpoint_dir
            catalog_conf[f"training.checkpoint_dir={folder}"] = {"path": f"{folder}/last.pt"}
            outputs.add(f"training.checkpoint_dir={folder}")
        project = Path(self._context.project_path)
        written = {
            (project / p).resolve() for name in outputs for p in _filepaths(catalog_conf.get(name))
        }
        problem = (
            blocked_output(catalog_conf, outputs, project)
            or missing_raw_input(catalog, pipeline.inputs(), written)
            or data_problem(catalog, pipeline, parsed)
        )
        if problem:
            _fail(problem)

    @hook_impl(trylast=True)  # after kedro-mlflow has closed its run as failed
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        from co2net_pipeline.kedro_glue.datasets import RawFeaturesDataset, raw_datasets

        found = raw_datasets(catalog, pipeline.inputs())
        features = next((n for n, d in found.items() if isinstance(d, RawFeaturesDataset)), None)
        line = None if _debug() else data_error_line(error, features)
        if line:
            raise DataInputError(line) from error


class DropNodeDataErrors(logging.Filter):
    """Drops Kedro's "Node ... failed with error" record when the error is unusable input
    data: `on_pipeline_error` prints it as one line, and it would otherwise show twice. Kedro
    logs the record inside its `except` block, so the error is `sys.exc_info()` here."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _debug() or not str(record.msg).startswith("Node %s failed with error"):
            return True
        error = sys.exc_info()[1]
        return error is None or data_error_line(error) is None


NODE_DATA_ERRORS = DropNodeDataErrors()


def drop_node_data_errors() -> None:
    """Install `DropNodeDataErrors` on Kedro's node logger (idempotent)."""
    node_logger = logging.getLogger("kedro.pipeline.node")
    if NODE_DATA_ERRORS not in node_logger.filters:
        node_logger.addFilter(NODE_DATA_ERRORS)


def missing_raw_input(
    catalog, inputs: Iterable[str], written: set[Path] = frozenset()
) -> str | None:
    """The first raw-layer input (features, annotations) whose path does not exist and is not
    `written` by the run (synthetic_data before train_eval), as one line; None when all do."""
    from co2net_pipeline.kedro_glue.datasets import RawFeaturesDataset, raw_datasets

    for name, dataset in raw_datasets(catalog, inputs).items():
        if dataset.exists():
            continue
        if Path(dataset.location).resolve() not in written:
            key = "features" if isinstance(dataset, RawFeaturesDataset) else "annotations"
            if _is_synthetic_set(catalog, Path(dataset.location)):
                return (
                    f"dataset {name!r}: {dataset.location} not found: the embedded SYNTHETIC "
                    "set is not written yet; kedro run --pipelines=synthetic_data (or make run) "
                    f"writes it, or set raw_data.{key} to your own features"
                )
            return (
                f"dataset {name!r}: {dataset.location} not found (set raw_data.{key} in "
                f"conf/<env>/globals.yml, or kedro run --params raw_data.{key}=PATH)"
            )
    return None


def _is_synthetic_set(catalog, location: Path) -> bool:
    """Whether `location` is where the synthetic_data pipeline writes its set (or in it)."""
    if "synthetic_features" not in catalog:
        return False
    folder = catalog.get("synthetic_features")._describe().get("path")
    if not folder:
        return False
    folder, location = Path(folder).resolve(), location.resolve()
    return location == folder or folder in location.parents


def data_problem(catalog, pipeline, parsed: Mapping) -> str | None:
    """What the data already there says against the parameters, as one line: train / test
    subsets the annotations lack, a sampling plan built for other iterations; None if fine."""
    if "snippet_sampling" in parsed:
        sampling = parsed["snippet_sampling"]
        found = _videos_and_source(catalog, set(pipeline.inputs()))
        if found is not None:
            from co2net_pipeline.method.sampler import subset_problem

            videos, where = found
            problem = subset_problem(
                videos["subset"], sampling.train_subset, sampling.test_subset, where
            )
            if problem:
                return problem
    if "training" in parsed:
        return stale_plan(catalog, pipeline, parsed["training"])
    return None


@contextlib.contextmanager
def _quiet():
    """Silence logging while the check reads data the run's nodes read (and log about) again."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _videos_and_source(catalog, inputs: set[str]):
    """(videos table with a `subset` column, where it comes from) of the annotations the run
    reads, or None when they cannot be read here (the node then reports the problem)."""
    try:
        with _quiet():
            if "raw_annotations" in inputs:
                found = catalog.load("raw_annotations")
                where = str(found.files[0]) if found.files else found.annotations.name
                return found.annotations.videos, where
            if "videos" in inputs and catalog.exists("videos"):
                where = catalog.get("videos")._describe().get("filepath", "videos")
                return catalog.load("videos"), f"the ingested videos table {where}"
    except Exception:  # noqa: BLE001 - unreadable input: its node reports it in one line
        return None
    return None


def stale_plan(catalog, pipeline, training) -> str | None:
    """The sampling plan a run reads without building it, when it was built for fewer
    iterations or another batch size than `training` asks for."""
    if "sampling_plan" not in pipeline.inputs() or "sampling_plan" in pipeline.all_outputs():
        return None
    try:
        with _quiet():
            if not catalog.exists("sampling_plan"):
                return None
            plan = catalog.load("sampling_plan")
    except Exception:  # noqa: BLE001 - unreadable input: its node reports it
        return None
    iterations = int(plan["iteration"].max()) + 1 if len(plan) else 0
    batch = int((plan["iteration"] == 0).sum())
    if iterations >= training.max_iter and batch == training.batch_size:
        return None
    return (
        f"dataset 'sampling_plan': built for {iterations} iterations of batch {batch}, but "
        f"training.max_iter={training.max_iter}, training.batch_size={training.batch_size}; "
        "re-run snippet_sampling first: kedro run --pipelines=snippet_sampling,training "
        "(with the same --params)"
    )


def _filepaths(entry) -> list[str]:
    """Every `filepath` / `path` in a catalog entry (also inside a wrapped `dataset:`)."""
    if not isinstance(entry, Mapping):
        return []
    found = [str(entry[k]) for k in ("filepath", "path") if isinstance(entry.get(k), str)]
    return found + [p for value in entry.values() for p in _filepaths(value)]


def blocked_output(catalog_conf: Mapping, outputs: Iterable[str], project: Path) -> str | None:
    """The first output whose location cannot be written (a parent is a file, or a folder is
    read-only), as one line; None when all can. Checked before the run, so a node's work is
    never lost at its save."""
    for name in sorted(outputs):
        for text in _filepaths(catalog_conf.get(name)):
            if "://" in text and not text.startswith("file://"):
                continue  # remote storage: its own errors
            path = Path(text.removeprefix("file://"))
            path = path if path.is_absolute() else project / path
            for parent in path.parents:
                if parent.exists():
                    what = name if "=" in name else f"dataset {name!r}"
                    if not parent.is_dir():
                        return f"{what}: cannot write {path}: {parent} is a file"
                    if not os.access(parent, os.W_OK | os.X_OK):
                        return f"{what}: cannot write {path}: {parent} is read-only"
                    break
    return None
