"""Comparing MLflow runs and writing what we record: the side-by-side run comparison (table and
mAP-vs-tIoU figure) and run tags. Reading runs is `tracking.runs`, which this module builds on.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from co2net_pipeline.common.atomic import atomic_path
from co2net_pipeline.tracking.runs import (
    BEST_ON_TEST_PREFIX,
    SELECTED_PREFIX,
    map_tiou,
    metric_label,
    sort_metric_names,
)


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
        _save_map_vs_tiou(metrics, png_tmp)
    return [csv, png]


def map_curves(metrics: pd.DataFrame) -> dict[str, dict[float, float]]:
    """The selected model's mAP by tIoU of each run in `compare_runs`' metrics table (the best
    test-set checkpoint's rows are a different model), for `reports.figures.map_vs_tiou`."""
    tious = {name: map_tiou(name) for name in metrics.index}
    return {
        run: {t: float(metrics.loc[name, run]) for name, t in tious.items() if t is not None}
        for run in metrics.columns
    }


def _save_map_vs_tiou(metrics: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    from co2net_pipeline.reports.figures import map_vs_tiou

    fig = map_vs_tiou(map_curves(metrics), legend_title="run")
    try:
        fig.savefig(path, dpi=100, format="png")
    finally:
        plt.close(fig)


def set_run_tags(tags: dict[str, str]) -> None:
    """Tag the active MLflow run (kedro-mlflow opens one per `kedro run`); no-op without one."""
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.set_tags(tags)
