"""MLflow runs as plain records, for `co2net summary` and `co2net compare`.

Three small things that know nothing about the terminal:
- the order of metric names (by tIoU, numerically; then the averages; then the iteration),
- the two rows a training run can score: the selected model (`detection_metrics.*`) and the
  best checkpoint on the test set (`best_on_test.*`, as the paper reports),
- a read-only reader of a local SQLite tracking store that needs neither MLflow nor pandas:
  importing MLflow alone takes ~8 s, and its store checks the database schema on every open,
  which made `co2net summary` take ~20 s. The store's tables (experiments, runs, latest_metrics,
  params, tags) have kept their columns since MLflow 1.x; `tests/test_cli.py` checks this reader
  against `mlflow.search_runs`.

Also the resolution of the 8-character run id prefixes our tools print, and `search_runs`
(MLflow's run table, for any tracking URI). This module reads runs; `tracking.records`
compares and writes them, and imports from here (never the other way).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:  # pandas only for hints: the SQLite path stays free of it
    import pandas as pd

# The selected model's scores: metrics of the `detection_metrics` catalog dataset, which
# kedro-mlflow prefixes with the dataset's name. The one spelling of that prefix.
SELECTED_PREFIX = "detection_metrics."
BEST_ON_TEST_PREFIX = "best_on_test."
MODEL_ROWS = (SELECTED_PREFIX, BEST_ON_TEST_PREFIX)
_MAP = re.compile(r"^map_(\d+(?:\.\d+)?)$")
_AVG = re.compile(r"^avg_(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$")
# What `training.selection` means for the model whose scores are `detection_metrics.*`.
SELECTION_LABELS = {
    "last": "last iteration",
    "heldout": "best checkpoint on held-out training videos",
    "oracle_test": "best checkpoint on the test set",
}


def metric_sort_key(name: str) -> tuple:
    """Sort key of a metric name (with or without `metrics.` and a model prefix): the model row
    (selected, then best on test), then mAP by tIoU numerically, the averages by their range,
    the iteration, anything else by name. `map_0.55` sorts between `map_0.5` and `map_0.6`."""
    name = name.removeprefix("metrics.")
    row = len(MODEL_ROWS)
    for i, prefix in enumerate(MODEL_ROWS):
        if name.startswith(prefix):
            row, name = i, name.removeprefix(prefix)
            break
    if m := _MAP.match(name):
        return (row, 0, float(m.group(1)), 0.0, name)
    if m := _AVG.match(name):
        return (row, 1, float(m.group(1)), float(m.group(2)), name)
    if name == "iteration":
        return (row, 2, 0.0, 0.0, name)
    return (row, 3, 0.0, 0.0, name)


def sort_metric_names(names: Iterable[str]) -> list[str]:
    return sorted(names, key=metric_sort_key)


def metric_label(name: str) -> str:
    """`map_0.5` → "mAP@0.5", `avg_0.1-0.7` → "avg mAP 0.1:0.7" (model prefix dropped)."""
    for prefix in MODEL_ROWS:
        name = name.removeprefix(prefix)
    if m := _MAP.match(name):
        return f"mAP@{m.group(1)}"
    if m := _AVG.match(name):
        return f"avg mAP {m.group(1)}:{m.group(2)}"
    return name


def resolve_run_ids(prefixes: Sequence[str], run_ids: Iterable[str], experiment: str) -> list[str]:
    """Full run ids for ids or unique prefixes (the 8 characters `co2net compare` prints), in the
    order given. An unknown or ambiguous prefix is a ValueError naming it."""
    known = list(dict.fromkeys(str(r) for r in run_ids))
    resolved = []
    for prefix in prefixes:
        prefix = str(prefix).strip()
        if not prefix:
            raise ValueError("empty run id")
        hits = [r for r in known if r.startswith(prefix)]
        if not hits:
            raise ValueError(f"no run with id {prefix!r} in experiment '{experiment}'")
        if len(hits) > 1 and prefix not in hits:
            shown = ", ".join(h[:12] + "…" for h in hits[:4])
            raise ValueError(
                f"run id prefix {prefix!r} matches {len(hits)} runs in experiment "
                f"'{experiment}' ({shown}); give more characters"
            )
        resolved.append(prefix if prefix in hits else hits[0])
    return list(dict.fromkeys(resolved))


@dataclass
class RunRecord:
    """One MLflow run: ids, status, start time (ms since the epoch) and its latest metrics,
    params and tags by name (no `metrics.` prefix)."""

    run_id: str
    name: str
    status: str
    start_time: int
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    experiment_id: str = ""

    @property
    def is_nested(self) -> bool:
        return bool(self.tags.get("mlflow.parentRunId"))

    def model_metrics(self, prefix: str) -> dict[str, float]:
        """The metrics of one model row (`SELECTED_PREFIX` / `BEST_ON_TEST_PREFIX`), prefix
        dropped, in tIoU order."""
        names = sort_metric_names(k for k in self.metrics if k.startswith(prefix))
        return {k.removeprefix(prefix): self.metrics[k] for k in names}

    def selection_label(self) -> str:
        """What the `detection_metrics.*` model is: "selected model (last iteration)", ..."""
        selection = self.params.get("training.selection")
        if selection is None:
            return "selected model"
        return f"selected model ({SELECTION_LABELS.get(selection, selection)})"

    def best_on_test_label(self) -> str:
        iteration = self.metrics.get(BEST_ON_TEST_PREFIX + "iteration")
        at = f" (iteration {int(iteration)})" if iteration is not None else ""
        return f"best checkpoint on the test set, as the paper reports{at}"


def sqlite_store_path(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///` tracking URI (None for any other kind of store)."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite":
        return None
    # sqlite:///relative.db → "/relative.db"; sqlite:////abs/path.db → "//abs/path.db"
    path = unquote(tracking_uri.split("sqlite://", 1)[1].split("?", 1)[0])
    path = path[1:] if path.startswith("/") else path
    return Path(path)


def _active_experiment_id(con: sqlite3.Connection, experiment: str, db_path: Path) -> Any:
    """The id of the active `experiment` in an open SQLite store; a ValueError without one."""
    rows = con.execute(
        "SELECT experiment_id FROM experiments WHERE name = ? AND lifecycle_stage = 'active'",
        (experiment,),
    ).fetchall()
    if not rows:
        raise ValueError(f"no MLflow experiment '{experiment}' in {db_path} (run `make run` first)")
    return rows[0][0]


def read_sqlite_runs(db_path: str | Path, experiment: str) -> list[RunRecord]:
    """The active runs of `experiment` in a local MLflow SQLite store, newest first.

    Opened read-only: a missing file is an error, never an empty new store."""
    db_path = Path(db_path)
    if not db_path.is_file():
        raise ValueError(f"{db_path}: no MLflow database here (run `make run` first)")
    try:
        con = sqlite3.connect(f"file:{db_path.resolve()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ValueError(f"{db_path}: cannot open the MLflow database ({exc})") from exc
    try:
        experiment_id = _active_experiment_id(con, experiment, db_path)
        runs = {
            run_id: RunRecord(
                run_id, name or "", status, int(start or 0), experiment_id=str(experiment_id)
            )
            for run_id, name, status, start in con.execute(
                "SELECT run_uuid, name, status, start_time FROM runs "
                "WHERE experiment_id = ? AND lifecycle_stage = 'active'",
                (experiment_id,),
            )
        }
        where = "run_uuid IN (SELECT run_uuid FROM runs WHERE experiment_id = ?)"
        for run_id, key, value, is_nan in con.execute(
            f"SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE {where}",
            (experiment_id,),
        ):
            if run_id in runs:
                runs[run_id].metrics[key] = float("nan") if is_nan else float(value)
        for table, attr in (("params", "params"), ("tags", "tags")):
            for run_id, key, value in con.execute(
                f"SELECT run_uuid, key, value FROM {table} WHERE {where}", (experiment_id,)
            ):
                if run_id in runs:
                    getattr(runs[run_id], attr)[key] = value
    except sqlite3.Error as exc:
        raise ValueError(f"{db_path}: not a readable MLflow database ({exc})") from exc
    finally:
        con.close()
    return sorted(runs.values(), key=lambda r: r.start_time, reverse=True)


def experiment_id(experiment: str, tracking_uri: str) -> str:
    """The id of an active experiment: read straight from a SQLite store (no MLflow import),
    else through MLflow. An unknown experiment is a ValueError."""
    db_path = sqlite_store_path(tracking_uri)
    if db_path is None:
        import mlflow

        found = mlflow.MlflowClient(tracking_uri).get_experiment_by_name(experiment)
        if found is None or found.lifecycle_stage != "active":
            raise ValueError(f"no MLflow experiment '{experiment}' at {tracking_uri}")
        return str(found.experiment_id)
    try:
        con = sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True)
        try:
            return str(_active_experiment_id(con, experiment, db_path))
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise ValueError(f"{db_path}: not a readable MLflow database ({exc})") from exc


def _columns(row, prefix: str) -> dict:
    """The logged (not None / NaN) values of one `search_runs` row under a column prefix."""
    return {
        k.removeprefix(prefix): v
        for k, v in row.items()
        if k.startswith(prefix) and v is not None and v == v  # v == v: not NaN
    }


def records_from_frame(frame) -> list[RunRecord]:
    """`mlflow.search_runs` rows (a DataFrame) as records, in the frame's order."""
    records = []
    for _, row in frame.iterrows():
        start = row.get("start_time")
        records.append(
            RunRecord(
                run_id=str(row["run_id"]),
                name=str(row.get("tags.mlflow.runName") or ""),
                status=str(row["status"]),
                start_time=int(start.timestamp() * 1000) if hasattr(start, "timestamp") else 0,
                metrics={k: float(v) for k, v in _columns(row, "metrics.").items()},
                params={k: str(v) for k, v in _columns(row, "params.").items()},
                tags={k: str(v) for k, v in _columns(row, "tags.").items()},
                experiment_id=str(row.get("experiment_id") or ""),
            )
        )
    return records


def experiment_url(base_url: str, experiment_id: str) -> str:
    """The MLflow UI page of an experiment's runs table, e.g. `http://127.0.0.1:5000`, "1" →
    `http://127.0.0.1:5000/#/experiments/1?workflowType=machine_learning`.

    MLflow 3.17's UI opens every experiment in its GenAI view (traces, tokens, cost) until the
    user flips its "GenAI | Model training" switch, whatever the experiment's
    `mlflow.experimentKind` tag says; `workflowType=machine_learning` selects the runs table.
    """
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}?workflowType=machine_learning"


def latest_scored_run(runs: Sequence[RunRecord], experiment: str) -> RunRecord:
    """The newest finished top-level run with detection metrics (a study's nested runs and its
    parent's summaries are not it)."""
    for run in runs:
        scored = any(k.startswith(SELECTED_PREFIX) for k in run.metrics)
        if run.status == "FINISHED" and not run.is_nested and scored:
            return run
    raise ValueError(f"experiment '{experiment}' has no finished run with detection metrics")


def load_runs(experiment: str, tracking_uri: str) -> list[RunRecord]:
    """The experiment's runs, newest first: straight from a SQLite store, or through MLflow for
    any other tracking URI."""
    db_path = sqlite_store_path(tracking_uri)
    if db_path is not None:
        return read_sqlite_runs(db_path, experiment)
    return records_from_frame(search_runs(experiment, tracking_uri))


def search_runs(
    experiment: str = "co2net",
    tracking_uri: str = "sqlite:///mlflow.db",
    run_ids: list[str] | None = None,
    include_nested: bool = True,
) -> pd.DataFrame:
    """The runs of an experiment, newest first (`mlflow.search_runs` columns: run_id, status,
    params.*, metrics.*, tags.*). run_ids: only those, as full ids or unique prefixes (an
    unknown or ambiguous one is an error);
    include_nested=False drops the per-configuration runs of the study pipelines
    (train_eval_seeds, ablations), which are nested under their pipeline's run."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        raise ValueError(
            f"no MLflow experiment '{experiment}' at {tracking_uri} (run `make run` first)"
        )
    runs = mlflow.search_runs(
        experiment_names=[experiment], order_by=["attributes.start_time DESC"]
    )
    if run_ids:
        runs = runs[runs["run_id"].isin(resolve_run_ids(run_ids, runs["run_id"], experiment))]
    if not include_nested and "tags.mlflow.parentRunId" in runs:
        runs = runs[runs["tags.mlflow.parentRunId"].isna()]
    return runs.reset_index(drop=True)


def map_tiou(name: str) -> float | None:
    """The tIoU of a per-threshold mAP name (`map_0.5` → 0.5); None for any other name."""
    m = _MAP.match(name)
    return float(m.group(1)) if m else None
