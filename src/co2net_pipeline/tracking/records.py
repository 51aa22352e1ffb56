"""Reading MLflow runs back: the headline summary and the side-by-side run comparison."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from co2net_pipeline.common.atomic import atomic_path
from co2net_pipeline.tracking.runs import (
    BEST_ON_TEST_PREFIX,
    SELECTED_PREFIX,
    metric_label,
    metric_sort_key,
    resolve_run_ids,
    sort_metric_names,
)

METRIC_PREFIX = "detection_metrics."
_MAP_KEY = re.compile(r"^detection_metrics\.map_(\d+(?:\.\d+)?)$")


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
    runs = _search_runs(experiment, tracking_uri, run_ids)
    if not include_nested and "tags.mlflow.parentRunId" in runs:
        runs = runs[runs["tags.mlflow.parentRunId"].isna()].reset_index(drop=True)
    return runs


def _search_runs(
    experiment: str, tracking_uri: str, run_ids: list[str] | None = None
) -> pd.DataFrame:
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
    return runs.reset_index(drop=True)


def headline_metrics(run: pd.Series) -> dict[str, float]:
    """The averaged mAPs of one run (columns `metrics.detection_metrics.avg_*`)."""
    prefix = "metrics." + METRIC_PREFIX + "avg_"
    return {
        col[len(prefix) :]: float(run[col])
        for col in sorted(run.index)
        if col.startswith(prefix) and pd.notna(run[col])
    }


def compare_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(parameters that differ between the runs, metrics) with one column per run (fractions).

    Metric rows: the selected model's `detection_metrics.*` without their prefix (`map_0.5`,
    `avg_0.1-0.7`), then the best test-set checkpoint's `best_on_test.*` with it, each in tIoU
    order (numerically); rows no run logged are left out. Parameters are sorted by name."""
    params = runs.filter(like="params.").T.sort_index()
    params.columns = runs["run_id"].str[:8]
    if len(runs) > 1:
        # a parameter that only some runs logged differs too
        shown = params.astype(object).fillna("<absent>").astype(str)
        params = params[shown.nunique(axis=1) > 1]
    params.index = params.index.str.removeprefix("params.")
    metric_cols = sort_metric_names(
        c
        for c in runs.columns
        if c.startswith(("metrics." + SELECTED_PREFIX, "metrics." + BEST_ON_TEST_PREFIX))
    )
    metrics = runs[metric_cols].T.dropna(how="all")
    metrics.columns = runs["run_id"].str[:8]
    metrics.index = metrics.index.str.removeprefix("metrics.").str.removeprefix(SELECTED_PREFIX)
    return params, metrics


def comparison_table(params: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """`compare_runs`' two tables as one labelled table, as `co2net compare` prints and saves it.

    Columns: section (`parameter`, `selected model`, `best on test`), name (the parameter, or
    `mAP@0.5`, `avg mAP 0.1:0.7`, `iteration`), unit (`%` for mAPs), then one per run (8-character
    id). mAPs are percentages rounded to 2 decimals; a value a run did not log is empty."""
    rows = [
        {"section": "parameter", "name": name, "unit": "", **values.to_dict()}
        for name, values in params.astype(object).iterrows()
    ]
    for name, values in metrics.iterrows():
        best = name.startswith(BEST_ON_TEST_PREFIX)
        if name.endswith("iteration"):
            shown = {run: int(v) if pd.notna(v) else None for run, v in values.items()}
            unit = ""
        else:
            shown, unit = (100 * values).round(2).to_dict(), "%"
        rows.append(
            {
                "section": "best on test" if best else "selected model",
                "name": metric_label(name),
                "unit": unit,
                **shown,
            }
        )
    return pd.DataFrame(rows, columns=["section", "name", "unit", *metrics.columns])


def save_comparison(table: pd.DataFrame, metrics: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write `comparison.csv` (the `comparison_table`) and `comparison.png` (mAP vs tIoU) into
    `out_dir`: both or neither. Returns their paths."""
    out = Path(out_dir)
    csv, png = out / "comparison.csv", out / "comparison.png"
    with atomic_path(csv) as csv_tmp, atomic_path(png) as png_tmp:
        table.to_csv(csv_tmp, index=False)
        _plot_map_vs_tiou(metrics, png_tmp)
    return [csv, png]


def _plot_map_vs_tiou(metrics: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the selected model's curve (the best test-set checkpoint's is a different model)
    rows = sorted(
        (metric_sort_key(name)[2], name)
        for name in metrics.index
        if _MAP_KEY.match(METRIC_PREFIX + name)
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in metrics.columns:
        ax.plot(
            [t for t, _ in rows],
            [100 * metrics.loc[n, run] for _, n in rows],
            marker="o",
            label=run,
        )
    ax.set_xlabel("tIoU")
    ax.set_ylabel("mAP (%)")
    ax.grid(alpha=0.3)
    ax.legend(title="run")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100, format="png")
    finally:
        plt.close(fig)


def set_run_tags(tags: dict[str, str]) -> None:
    """Tag the active MLflow run (kedro-mlflow opens one per `kedro run`); no-op without one."""
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.set_tags(tags)
