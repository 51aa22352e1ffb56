"""Reading MLflow runs back: the headline summary and the side-by-side run comparison."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

METRIC_PREFIX = "detection_metrics."
_MAP_KEY = re.compile(r"^detection_metrics\.map_(\d+(?:\.\d+)?)$")


def search_runs(
    experiment: str = "co2net",
    tracking_uri: str = "sqlite:///mlflow.db",
    run_ids: list[str] | None = None,
    include_nested: bool = True,
) -> pd.DataFrame:
    """The runs of an experiment, newest first (`mlflow.search_runs` columns: run_id, status,
    params.*, metrics.*, tags.*). run_ids: only those (an unknown id is an error);
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
        missing = sorted(set(run_ids) - set(runs["run_id"]))
        if missing:
            raise ValueError(f"run id(s) not in experiment '{experiment}': {', '.join(missing)}")
        runs = runs[runs["run_id"].isin(run_ids)]
    return runs.reset_index(drop=True)


def headline_metrics(run: pd.Series) -> dict[str, float]:
    """The averaged mAPs of one run (columns `metrics.detection_metrics.avg_*`)."""
    prefix = "metrics." + METRIC_PREFIX + "avg_"
    return {
        col[len(prefix) :]: float(run[col])
        for col in sorted(run.index)
        if col.startswith(prefix) and pd.notna(run[col])
    }


def summary_command(experiment: str = "co2net", tracking_uri: str = "sqlite:///mlflow.db") -> int:
    """Print the latest finished run's averaged mAPs and where to look at it."""
    runs = search_runs(experiment, tracking_uri, include_nested=False)
    evaluated = [c for c in runs.columns if c.startswith("metrics." + METRIC_PREFIX)]
    finished = runs["status"] == "FINISHED"
    if evaluated:
        finished &= runs[evaluated].notna().any(axis=1)
    runs = runs[finished]
    if runs.empty:
        raise ValueError(f"experiment '{experiment}' has no finished run with detection metrics")
    run = runs.iloc[0]
    source = run.get("tags.data_source", "unknown")
    print(f"\nMLflow run {run['run_id']} (experiment '{experiment}', data: {source})")
    per_tiou = {
        float(m.group(1)): float(run[col])
        for col in run.index
        if col.startswith("metrics.") and (m := _MAP_KEY.match(col.removeprefix("metrics.")))
    }
    if per_tiou:
        print(
            "  mAP@tIoU " + "  ".join(f"{t:g}:{100 * v:.1f}" for t, v in sorted(per_tiou.items()))
        )
    for name, value in headline_metrics(run).items():
        print(f"  mAP avg {name.replace('-', ':'):>9}: {100 * value:6.2f}")
    if source == "synthetic":
        print("  (embedded SYNTHETIC features: these numbers measure the pipeline, not THUMOS14)")
    print(f"  browse: mlflow ui --backend-store-uri {tracking_uri}")
    return 0


def compare_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(parameters that differ between the runs, metrics) with one column per run."""
    params = runs.filter(like="params.").T
    params.columns = runs["run_id"].str[:8]
    if len(runs) > 1:
        # a parameter that only some runs logged differs too
        shown = params.astype(object).fillna("<absent>").astype(str)
        params = params[shown.nunique(axis=1) > 1]
    params.index = params.index.str.removeprefix("params.")
    metric_cols = [c for c in runs.columns if c.startswith("metrics." + METRIC_PREFIX)]
    metrics = runs[metric_cols].T
    metrics.columns = runs["run_id"].str[:8]
    metrics.index = metrics.index.str.removeprefix("metrics." + METRIC_PREFIX)
    return params, metrics


def compare_command(
    experiment: str = "co2net",
    run_ids: list[str] | None = None,
    output_dir: str = "data/08_reporting/comparison",
    tracking_uri: str = "sqlite:///mlflow.db",
    last: int = 5,
) -> int:
    """Print and save (CSV + PNG of mAP vs tIoU) a comparison of runs.

    Without run ids: the `last` finished top-level runs (a study's nested per-configuration runs
    are left out; name them with `run_ids` to compare them)."""
    runs = search_runs(experiment, tracking_uri, run_ids, include_nested=bool(run_ids))
    if not run_ids:
        runs = runs[runs["status"] == "FINISHED"].head(last)
    if runs.empty:
        raise ValueError(f"experiment '{experiment}' has no run to compare")
    params, metrics = compare_runs(runs)
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print("Parameters that differ:" if len(params) else "No parameter differs.")
        if len(params):
            print(params.to_string())
        print("\nMetrics:")
        print(metrics.map(lambda v: f"{100 * v:.2f}" if pd.notna(v) else "-").to_string())
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.concat({"param": params.astype(str), "metric": metrics})
    tmp = out / f".comparison.csv.tmp-{os.getpid()}"
    table.to_csv(tmp)
    os.replace(tmp, out / "comparison.csv")
    _plot_map_vs_tiou(metrics, out / "comparison.png")
    print(f"\nwrote {out / 'comparison.csv'} and {out / 'comparison.png'}")
    return 0


def _plot_map_vs_tiou(metrics: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        (float(m.group(1)), name)
        for name in metrics.index
        if (m := _MAP_KEY.match(METRIC_PREFIX + name))
    ]
    rows.sort()
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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def set_run_tags(tags: dict[str, str]) -> None:
    """Tag the active MLflow run (kedro-mlflow opens one per `kedro run`); no-op without one."""
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.set_tags(tags)
