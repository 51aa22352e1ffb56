"""Multi-configuration studies: several seeds, or the paper's ablations, as nested MLflow runs.

A *configuration* is the train_eval chain with some parameters overridden: sampling plan →
training → whole-video test inference → proposals → detection mAP. It runs through the very
node functions the `snippet_sampling`, `training`, `inference`, `proposals` and `evaluation`
pipelines use, on the catalog's data, so a configuration with no override reproduces what
`kedro run` (train_eval) reports for the same parameters.

Every configuration is logged as an MLflow run nested under the active (Kedro) run, with the
same metric names as a train_eval run (`detection_metrics.map_0.5`,
`training_metrics.loss_total`, ...), so `co2net compare --runs <child> <child>` works on them.
Without an active MLflow run nothing is logged.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from co2net_pipeline.pipelines.evaluation.nodes import evaluate_proposals
from co2net_pipeline.pipelines.inference.nodes import infer_test_set
from co2net_pipeline.pipelines.proposals.nodes import generate_proposals
from co2net_pipeline.pipelines.snippet_sampling.nodes import build_sampling_plan
from co2net_pipeline.pipelines.training.nodes import train

logger = logging.getLogger(__name__)

# Parameter groups a configuration may override (each is a `params:<group>` dictionary).
PARAM_GROUPS = (
    "model",
    "loss",
    "training",
    "snippet_sampling",
    "inference",
    "proposals",
    "evaluation",
)
# Keys of an ablation entry that describe it rather than override parameters.
ABLATION_INFO_KEYS = ("group", "paper_avg")
# Tags of the parent run copied onto every nested run (set by co2net_pipeline.hooks).
_INHERITED_TAGS = ("git_commit", "kedro_env", "data_source", "feature_fingerprint", "dataset")
_MLFLOW_BATCH = 1000  # MLflow's limit of metrics per log_batch call


@dataclass(frozen=True)
class StudyData:
    """What every configuration trains and is scored on (all from the catalog).

    feature_store: lazy `FeatureStore`; videos / segments / ambiguous_intervals: the annotation
    tables; classlist: C class names; data_split: {"train", "heldout", "test"} video ids.
    """

    feature_store: Any
    videos: pd.DataFrame
    segments: pd.DataFrame
    ambiguous_intervals: pd.DataFrame
    classlist: list[str]
    data_split: dict


@dataclass
class ConfigurationResult:
    """Outcome of one configuration.

    detection: metric → value in [0, 1] (`map_<tIoU>` and `avg_<first>-<last>`, the names the
    evaluation node gives them); loss_summary: `loss_<term>_initial` / `_final` (means over the
    first / last 10 % of the iterations); run_id: the nested MLflow run, or None.
    """

    name: str
    detection: dict[str, float]
    loss_summary: dict[str, float]
    selected_iteration: int
    seconds: float
    run_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Parameters


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """`base` with `overrides` merged in recursively (nested mappings merge, anything else replaces)."""
    out = copy.deepcopy(dict(base))
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def configuration_params(
    params: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    seed: int | None = None,
    checkpoint_subdir: str | None = None,
) -> dict[str, Any]:
    """The parameter groups of one configuration.

    params: {group: dict} for the `PARAM_GROUPS`; overrides: {group: {key: value}} merged in;
    seed: when given, seeds both the sampling plan (`snippet_sampling.seed`) and the weights and
    dropout (`training.seed`); the train/held-out/test split stays the catalog's `data_split`.
    checkpoint_subdir: checkpoints go to `training.checkpoint_dir/<checkpoint_subdir>`, so the
    configurations of a study do not overwrite each other's (or train_eval's) `last.pt`.
    """
    unknown = sorted(set(overrides or {}) - set(PARAM_GROUPS))
    if unknown:
        raise ValueError(
            f"overrides for unknown parameter groups {unknown}; allowed: {list(PARAM_GROUPS)}"
        )
    missing = [g for g in PARAM_GROUPS if g not in params]
    if missing:
        raise ValueError(f"configuration_params: parameter groups {missing} are missing")
    out = merge_overrides({g: params[g] for g in PARAM_GROUPS}, overrides)
    if seed is not None:
        out["training"]["seed"] = int(seed)
        out["snippet_sampling"]["seed"] = int(seed)
    if checkpoint_subdir:
        root = out["training"].get("checkpoint_dir", "data/06_models/checkpoints")
        out["training"]["checkpoint_dir"] = str(Path(root) / checkpoint_subdir)
    return out


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a.b": 1}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def ablation_overrides(entry: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """The parameter overrides of one `studies.ablations` entry (its `group`/`paper_avg` removed)."""
    entry = dict(entry or {})
    unknown = sorted(set(entry) - set(PARAM_GROUPS) - set(ABLATION_INFO_KEYS))
    if unknown:
        raise ValueError(
            f"studies.ablations.{name}: unknown keys {unknown}; "
            f"allowed: {list(PARAM_GROUPS) + list(ABLATION_INFO_KEYS)}"
        )
    return {k: v for k, v in entry.items() if k in PARAM_GROUPS}


def as_list(value: Any) -> list:
    """A list parameter, also given as a whitespace-separated string (`kedro run --params`
    splits on commas, so `--params "studies.seeds=1 2 3"` is the way to pass a list there)."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, int | float):
        return [value]
    return list(value)


def select_ablations(
    ablations: Mapping[str, Any], selection: Sequence[str] | str | None
) -> list[str]:
    """Names to run: all of `ablations` (file order) or `selection` (its order), checked."""
    selection = [str(n) for n in as_list(selection)]
    if not selection:
        return list(ablations)
    missing = [n for n in selection if n not in ablations]
    if missing:
        raise ValueError(
            f"studies.ablation_selection names {missing}, not in studies.ablations {list(ablations)}"
        )
    return list(dict.fromkeys(selection))


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


def train_and_evaluate(
    data: StudyData, params: Mapping[str, Any]
) -> tuple[ConfigurationResult, dict]:
    """Train and score one configuration with the pipelines' node functions.

    params: the `PARAM_GROUPS` dictionaries (see `configuration_params`). Returns the result and
    the training node's metric history ({"loss_<term>": [{"value", "step"}, ...]}).
    """
    t0 = time.perf_counter()
    plan = build_sampling_plan(
        data.videos, data.classlist, data.data_split, params["snippet_sampling"], params["training"]
    )
    artifact, history, loss_history, loss_plot = train(
        data.feature_store,
        data.videos,
        data.segments,
        data.ambiguous_intervals,
        data.classlist,
        data.data_split,
        plan,
        params["model"],
        params["loss"],
        params["training"],
        params["proposals"],
        params["evaluation"],
    )
    plt.close(loss_plot)
    cas_store = infer_test_set(artifact, data.feature_store, data.data_split, params["inference"])
    proposals, _ = generate_proposals(
        cas_store, data.classlist, data.ambiguous_intervals, params["proposals"]
    )
    metrics, _, _, _, map_plot = evaluate_proposals(
        proposals, data.segments, data.videos, data.classlist, params["evaluation"]
    )
    plt.close(map_plot)
    result = ConfigurationResult(
        name="",
        detection={name: float(m["value"]) for name, m in metrics.items()},
        loss_summary=_loss_summary(history),
        selected_iteration=int(artifact["selected_iteration"]),
        seconds=time.perf_counter() - t0,
        info={"n_proposals": len(proposals)},
    )
    return result, loss_history


def tag_study_run(study: str, data: StudyData) -> None:
    """Tag the active (parent) run with the study and the features it used (as ingestion does
    for train_eval); the nested runs inherit these tags."""
    from co2net_pipeline.tracking import set_run_tags

    store = data.feature_store
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
    run, params: Mapping[str, Any], result: ConfigurationResult, loss_history: dict
) -> None:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)
    metrics = [Metric(f"detection_metrics.{k}", v, now, 0) for k, v in result.detection.items()]
    metrics += [Metric(f"loss_summary.{k}", v, now, 0) for k, v in result.loss_summary.items()]
    for term, points in loss_history.items():
        points = points if isinstance(points, list) else [points]
        metrics += [
            Metric(f"training_metrics.{term}", float(p["value"]), now, int(p["step"]))
            for p in points
        ]
    flat = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
    client = MlflowClient()
    run_id = run.info.run_id
    for start in range(0, len(flat), 100):  # MLflow's limit of params per batch
        client.log_batch(run_id, params=flat[start : start + 100])
    for start in range(0, len(metrics), _MLFLOW_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + _MLFLOW_BATCH])


def run_configuration(
    data: StudyData,
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
        result, loss_history = train_and_evaluate(data, params)
        result.name = name
        if run is not None:
            result.run_id = run.info.run_id
            _log_child(run, params, result, loss_history)
    logger.info(
        "%s/%s: avg mAP (%%) %s (%.1f s)",
        study,
        name,
        ", ".join(
            f"{k[4:]} {100 * v:.2f}" for k, v in result.detection.items() if k.startswith("avg_")
        ),
        result.seconds,
    )
    return result


# --------------------------------------------------------------------------------------------
# Tables


def results_table(results: Sequence[ConfigurationResult], index_name: str) -> pd.DataFrame:
    """One row per configuration: the detection metrics, the final total loss, the run id."""
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
