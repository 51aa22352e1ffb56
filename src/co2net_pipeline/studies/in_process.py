"""Multi-configuration studies: several seeds, or the paper's ablations, as nested MLflow runs.

A *configuration* is the train_eval pipeline from the data split on (sampling plan → training →
whole-video test inference → proposals → detection mAP) with some parameters overridden. It is
run by Kedro's runner on an in-memory catalog holding the study's input datasets and the
configuration's parameters, so it executes the very nodes, wired by the very pipeline
definitions, that `kedro run` (train_eval) does: a configuration with no override reproduces
what train_eval reports for the same parameters, and there is no second wiring of the chain.

Every configuration is logged as an MLflow run nested under the active (Kedro) run, with the
same metric names as a train_eval run (`detection_metrics.map_0.5`,
`training_metrics.loss_total`, ...), so `co2net compare --runs <child> <child>` works on them.
Without an active MLflow run nothing is logged.

What a configuration overrides (`params.overrides.configuration_overrides`) is the same for
the Airflow-dispatched runs of `studies.airflow.run_configuration`, which run each
configuration as its own `kedro run`. pandas, Kedro and MLflow are imported where used.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from co2net_pipeline.params.overrides import (
    ablation_overrides,
    configuration_overrides,
    configuration_params,
    flatten,
    seed_list,
    select_ablations,
)
from co2net_pipeline.tracking.runs import SELECTED_PREFIX

if TYPE_CHECKING:
    import pandas as pd
    from kedro.pipeline import Pipeline

logger = logging.getLogger(__name__)

# What a configuration's run of the chain must produce (the rest of its outputs are dropped).
CONFIGURATION_OUTPUTS = (
    "trained_model",
    "training_history",
    "training_metrics",
    "proposals",
    "detection_metrics",
)
# Tags of the parent run copied onto every nested run (set by co2net_pipeline.kedro_glue.hooks).
_INHERITED_TAGS = ("git_commit", "kedro_env", "data_source", "feature_fingerprint", "dataset")


@dataclass
class ConfigurationResult:
    """Outcome of one configuration.

    detection: metric → value in [0, 1] (`map_<tIoU>` and `avg_<first>-<last>`, the names the
    evaluation node gives them); loss_summary: `loss_<term>_initial` / `_final` (means over the
    first / last 10 % of the iterations); run_id: the nested MLflow run, or None; tags: the run
    tags the chain's nodes returned (`training_tags`, `proposal_tags`), set on the nested run.
    """

    name: str
    detection: dict[str, float]
    loss_summary: dict[str, float]
    selected_iteration: int
    seconds: float
    run_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# One configuration


def _loss_summary(history: pd.DataFrame) -> dict[str, float]:
    """Mean of every loss term over the first and the last 10 % of the iterations."""
    n = max(1, math.ceil(0.1 * len(history)))
    terms = [c for c in history.columns if c != "iteration"]
    out: dict[str, float] = {}
    for term in terms:
        out[f"loss_{term}_initial"] = float(history[term].iloc[:n].mean())
        out[f"loss_{term}_final"] = float(history[term].iloc[-n:].mean())
    return out


def run_chain(
    chain: Pipeline, data: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, Any]:
    """Run `chain` (a Kedro pipeline) on in-memory inputs; returns every dataset it touched.

    data: the chain's non-parameter inputs by dataset name (the objects are passed as they are,
    not copied); params: the `params:<group>` inputs by group. No hooks run (no kedro-mlflow
    logging: the caller logs). Nothing is released, so intermediate outputs stay readable.
    """
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    class _Kept(MemoryDataset):
        def _release(self) -> None:  # the runner frees intermediate data; we read it afterwards
            pass

    groups = {name for name in chain.inputs() if name.startswith("params:")}
    missing = sorted(
        {n for n in chain.inputs() - groups if n not in data}
        | {g for g in groups if g.removeprefix("params:") not in params}
    )
    if missing:
        raise ValueError(f"study configuration: the chain needs {missing}, not given")
    inputs = {name: data[name] for name in chain.inputs() - groups}
    datasets = {name: _Kept(copy_mode="assign") for name in chain.datasets()}
    for name, value in inputs.items():
        datasets[name].save(value)
    for name in groups:
        datasets[name].save(params[name.removeprefix("params:")])
    SequentialRunner().run(chain, DataCatalog(datasets=datasets))
    return {name: dataset.load() for name, dataset in datasets.items() if dataset.exists()}


def train_and_evaluate(
    chain: Pipeline, data: Mapping[str, Any], params: Mapping[str, Any]
) -> tuple[ConfigurationResult, dict]:
    """Train and score one configuration by running the train_eval `chain`.

    params: the `PARAM_GROUPS` dictionaries (see `configuration_params`). Returns the result and
    the training node's metric history ({"loss_<term>": [{"value", "step"}, ...]}).
    """
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    out = run_chain(chain.to_outputs(*CONFIGURATION_OUTPUTS), data, params)
    for value in out.values():
        if isinstance(value, plt.Figure):
            plt.close(value)
    result = ConfigurationResult(
        name="",
        detection={name: float(m["value"]) for name, m in out["detection_metrics"].items()},
        loss_summary=_loss_summary(out["training_history"]),
        selected_iteration=int(out["trained_model"]["selected_iteration"]),
        seconds=time.perf_counter() - t0,
        info={"n_proposals": len(out["proposals"])},
        tags={**out.get("training_tags", {}), **out.get("proposal_tags", {})},
    )
    return result, out["training_metrics"]


def tag_study_run(study: str, data: Mapping[str, Any]) -> None:
    """Tag the active (parent) run with the study and the features it used (as ingestion does
    for train_eval); the nested runs inherit these tags."""
    from co2net_pipeline.tracking.records import set_run_tags

    store = data.get("feature_store")
    tags = {"study": study}
    if getattr(store, "fingerprint", None):
        tags["feature_fingerprint"] = str(store.fingerprint)
    if getattr(store, "dataset_name", None):
        tags["dataset"] = str(store.dataset_name)
    set_run_tags(tags)


@contextlib.contextmanager
def nested_run(name: str, tags: Mapping[str, str] | None = None) -> Iterator[Any]:
    """An MLflow run nested under the active one (it inherits the parent's provenance tags), or
    None when no run is active (tracking disabled, plain function calls)."""
    import mlflow

    parent = mlflow.active_run()
    if parent is None:
        yield None
        return
    parent_tags = mlflow.get_run(parent.info.run_id).data.tags
    inherited = {k: parent_tags[k] for k in _INHERITED_TAGS if k in parent_tags}
    with mlflow.start_run(run_name=name, nested=True, tags={**inherited, **(tags or {})}) as run:
        yield run


def _log_child(
    run_id: str, params: Mapping[str, Any], result: ConfigurationResult, loss_history: dict
) -> None:
    """Parameters, detection metrics, loss summary, loss history and the nodes' run tags in one
    `log_batch` (MLflow splits it into batches within its limits)."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)
    metrics = [Metric(SELECTED_PREFIX + k, v, now, 0) for k, v in result.detection.items()]
    metrics += [Metric(f"loss_summary.{k}", v, now, 0) for k, v in result.loss_summary.items()]
    for term, points in loss_history.items():
        points = points if isinstance(points, list) else [points]
        metrics += [
            Metric(f"training_metrics.{term}", float(p["value"]), now, int(p["step"]))
            for p in points
        ]
    flat = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
    tags = [RunTag(k, str(v)) for k, v in result.tags.items()]
    MlflowClient().log_batch(run_id, metrics=metrics, params=flat, tags=tags)


def _run_nested(
    chain: Pipeline,
    data: Mapping[str, Any],
    params: Mapping[str, Any],
    name: str,
    study: str,
    tags: Mapping[str, str] | None = None,
) -> ConfigurationResult:
    """Train + evaluate one configuration inside its own nested MLflow run (when one is active).

    The nested run is named `<study>/<name>` and tagged `study`, `configuration`; it gets every
    parameter of the configuration (flattened, e.g. `model.fusion`), the detection metrics, the
    loss summary and the loss history at `training.log_every`.
    """
    logger.info("%s: configuration %s", study, name)
    with nested_run(
        f"{study}/{name}", {"study": study, "configuration": name, **(tags or {})}
    ) as run:
        result, loss_history = train_and_evaluate(chain, data, params)
        result.name = name
        if run is not None:
            result.run_id = run.info.run_id
            _log_child(run.info.run_id, params, result, loss_history)
    averages = [
        f"{k[4:]} {100 * v:.2f}" for k, v in result.detection.items() if k.startswith("avg_")
    ]
    logger.info("%s/%s: avg mAP (%%) %s (%.1f s)", study, name, ", ".join(averages), result.seconds)
    return result


# --------------------------------------------------------------------------------------------
# Tables


def results_table(results: Sequence[ConfigurationResult], index_name: str) -> pd.DataFrame:
    """One row per configuration: the detection metrics, the final total loss, the run id."""
    import pandas as pd

    rows = []
    for r in results:
        rows.append(
            {
                index_name: r.name,
                **r.detection,
                "loss_total_final": r.loss_summary.get("loss_total_final", float("nan")),
                "selected_iteration": r.selected_iteration,
                "run_id": r.run_id or "",
            }
        )
    return pd.DataFrame(rows).set_index(index_name)


def detection_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith(("map_", "avg_"))]


def mean_std(table: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.Series, pd.Series]:
    """Mean and sample standard deviation (ddof=1; 0 for a single row) of each column."""
    values = table[list(columns)].astype(float)
    std = values.std(ddof=1) if len(values) > 1 else values.iloc[0] * 0.0
    return values.mean(), std


def _fmt(value: Any, percent: bool) -> str:
    import numpy as np

    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return "–"
        return f"{100 * value:.2f}" if percent else f"{value:.4g}"
    return str(value)


def to_markdown(
    table: pd.DataFrame, percent_columns: Sequence[str] = (), title: str = "", note: str = ""
) -> str:
    """A GitHub Markdown table (index first); `percent_columns` are shown ×100 with 2 decimals."""
    percent = set(percent_columns)
    header = [table.index.name or "", *table.columns]
    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    for index, row in table.iterrows():
        cells = [str(index)] + [_fmt(row[c], c in percent) for c in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# The two studies


def _run_study(
    chain: Pipeline,
    data: Mapping[str, Any],
    params: Mapping[str, Any],
    studies: Mapping[str, Any],
    study: str,
    values: Sequence[Any],
) -> list[ConfigurationResult]:
    """Tag the parent run, then train and evaluate each configuration (`values`: seeds or
    ablation names), in order, each in a nested run. The parameters are all built (and
    checked) before the first configuration trains."""
    configurations = []
    for value in values:
        name, overrides, tags = configuration_overrides(studies, study, value)
        checkpoints = f"{study}/{name}"
        configurations.append((name, configuration_params(params, overrides, checkpoints), tags))
    tag_study_run(study, data)
    return [
        _run_nested(chain, data, config, name=name, study=study, tags=tags)
        for name, config, tags in configurations
    ]


def run_seed_study(
    chain: Pipeline,
    data: Mapping[str, Any],
    params: Mapping[str, Any],
    studies: Mapping[str, Any],
) -> tuple[dict, pd.DataFrame, str]:
    """Train and evaluate once per seed of `studies.seeds` (see `seed_study_tables`).

    A seed sets both `training.seed` (weights, dropout) and `snippet_sampling.seed` (the
    sampling plan, rebuilt per seed); the data split is the catalog's `data_split`.
    chain, data: what `run_chain` takes; params: the `PARAM_GROUPS` dictionaries.
    """
    seeds = seed_list(studies)
    return seed_study_tables(seeds, _run_study(chain, data, params, studies, "seeds", seeds))


def seed_study_tables(
    seeds: Sequence[int], results: Sequence[ConfigurationResult]
) -> tuple[dict, pd.DataFrame, str]:
    """The parent run's metrics (`<metric>_mean`, `<metric>_std` for every mAP and average;
    sample std), the table (one row per seed, then `mean` and `std`; fractions) and the same
    table in Markdown (percent)."""
    import pandas as pd

    per_seed = results_table(results, "seed").drop(columns="selected_iteration")
    per_seed.index = pd.Index([str(s) for s in seeds], name="seed")
    columns = [*detection_columns(per_seed), "loss_total_final"]
    mean, std = mean_std(per_seed, columns)
    table = pd.concat([per_seed, pd.DataFrame([mean, std], index=["mean", "std"])])
    table.index.name = "seed"
    table["run_id"] = table["run_id"].fillna("")

    metrics = {}
    for column in detection_columns(per_seed):
        metrics[f"{column}_mean"] = {"value": float(mean[column]), "step": 0}
        metrics[f"{column}_std"] = {"value": float(std[column]), "step": 0}

    scale = {c: (100.0, ".2f") if c != "loss_total_final" else (1.0, ".4g") for c in columns}
    shown = pd.DataFrame(
        {c: [format(s * v, f) for v in per_seed[c]] for c, (s, f) in scale.items()},
        index=per_seed.index,
    )
    shown.loc["mean ± std"] = [
        f"{format(s * mean[c], f)} ± {format(s * std[c], f)}" for c, (s, f) in scale.items()
    ]
    markdown = to_markdown(
        shown,
        title=f"Detection mAP (%) over {len(seeds)} seeds (loss_total_final: mean total loss "
        "of the last 10 % iterations)",
        note="std: sample standard deviation (ddof=1). Each seed is a nested MLflow run (tag study=seeds).",
    )
    return metrics, table, markdown


ABLATION_REFERENCE = "full"


def run_ablation_study(
    chain: Pipeline,
    data: Mapping[str, Any],
    params: Mapping[str, Any],
    studies: Mapping[str, Any],
) -> tuple[dict, pd.DataFrame, str]:
    """Train and evaluate every configuration of `studies.ablations` (or `ablation_selection`);
    see `ablation_study_tables` for what it returns.

    Each entry overrides parameter groups (`model`, `loss`, ...) of the base parameters; its
    `group` names the paper table and `paper_avg` the paper's THUMOS14 avg mAP 0.1:0.7 (%), for
    reference only. chain, data: what `run_chain` takes; params: the `PARAM_GROUPS` dictionaries.
    """
    ablations = studies.get("ablations") or {}
    names = select_ablations(ablations, studies.get("ablation_selection"))
    if not names:
        raise ValueError("studies.ablations is empty")
    results = _run_study(chain, data, params, studies, "ablations", names)
    return ablation_study_tables(ablations, results, studies.get("headline_metric"))


def ablation_study_tables(
    ablations: Mapping[str, Any],
    results: Sequence[ConfigurationResult],
    headline: str | None = None,
) -> tuple[dict, pd.DataFrame, str]:
    """The parent run's metrics (`<configuration>.<metric>`), the comparison table (one row per
    configuration, fractions; `delta_<headline>` against the `full` configuration when it ran)
    and the same table in Markdown (percent).

    headline: the metric of the delta column (default `avg_0.1-0.7`, else the last average).
    """
    import pandas as pd

    names = [r.name for r in results]
    info = []
    for name in names:
        entry = ablations[name] or {}
        paper = entry.get("paper_avg")
        info.append(
            {
                "group": str(entry.get("group", "")),
                "overrides": _describe(ablation_overrides(entry, name)),
                "paper_avg": float(paper) / 100 if paper is not None else float("nan"),
            }
        )
    table = pd.concat(
        [pd.DataFrame(info, index=names), results_table(results, "configuration")], axis=1
    )
    table.index.name = "configuration"
    columns = detection_columns(table)
    headline = headline or "avg_0.1-0.7"
    if headline not in columns:
        headline = [c for c in columns if c.startswith("avg_")][-1]
    if ABLATION_REFERENCE in table.index:
        table[f"delta_{headline}"] = table[headline] - table.loc[ABLATION_REFERENCE, headline]

    metrics = {
        f"{name}.{column}": {"value": float(table.loc[name, column]), "step": 0}
        for name in names
        for column in columns
    }
    return metrics, table, _ablation_markdown(table, columns, headline)


def _describe(overrides: Mapping[str, Any]) -> str:
    return "; ".join(f"{k}={v}" for k, v in flatten(overrides).items()) or "(reference)"


def _ablation_markdown(table: pd.DataFrame, columns: Sequence[str], headline: str) -> str:
    shown_columns = [
        "group",
        "overrides",
        *[c for c in columns if c == "map_0.5" or c.startswith("avg_")],
    ]
    shown_columns += [c for c in (f"delta_{headline}", "paper_avg") if c in table.columns]
    return to_markdown(
        table[shown_columns + ["loss_total_final"]],
        percent_columns=[c for c in shown_columns if c not in ("group", "overrides")],
        title="Ablations: detection mAP (%)",
        note=(
            f"delta: {headline} minus the `{ABLATION_REFERENCE}` configuration's. paper_avg: the "
            "paper's THUMOS14 I3D avg mAP 0.1:0.7, for orientation only (other data and "
            "schedule). loss_total_final: mean total loss over the last 10 % of the iterations."
        ),
    )
