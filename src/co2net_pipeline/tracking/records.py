"""Comparing MLflow runs and writing what we record: the side-by-side run comparison (table and
mAP-vs-tIoU figure) and run tags. Reading runs is `tracking.runs`, which this module builds on.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from co2net_pipeline.common.atomic import atomic_path
from co2net_pipeline.data.identity import DATA_TAGS
from co2net_pipeline.tracking.runs import (
    BEST_ON_TEST_PREFIX,
    SELECTED_PREFIX,
    map_tiou,
    metric_label,
    sort_metric_names,
)


def run_labels(runs: pd.DataFrame) -> list[str]:
    """A column heading per run: its name, with its 8-character id where two runs share the
    name; the id alone for a run without a name."""
    names = runs.get("tags.mlflow.runName", pd.Series([None] * len(runs), index=runs.index))
    names = [n if isinstance(n, str) and n else "" for n in names]
    ids = runs["run_id"].astype(str).str[:8].tolist()
    counts = Counter(names)
    return [
        (f"{n} ({i})" if counts[n] > 1 else n) if n else i for n, i in zip(names, ids, strict=True)
    ]


def compare_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(data tags and parameters that differ between the runs, metrics): one column per run,
    in the frame's order, headed by `run_labels` (metrics as fractions).

    First table: the tags that say which data a run read (`DATA_TAGS`: dataset, data_source,
    features_path, features_format, feature_fingerprint), then the parameters sorted by name;
    for one run, all of them. Metric rows: the selected model's `detection_metrics.*` without
    their prefix (`map_0.5`, `avg_0.1-0.7`), then the best test-set checkpoint's
    `best_on_test.*` with it, each in tIoU order (numerically); rows no run logged are left out."""
    labels = run_labels(runs)
    data = runs[[f"tags.{t}" for t in DATA_TAGS if f"tags.{t}" in runs]].T
    data.index = data.index.str.removeprefix("tags.")
    params = runs.filter(like="params.").T.sort_index()
    params.index = params.index.str.removeprefix("params.")
    params = pd.concat([data, params])
    params.columns = labels
    if len(runs) > 1:
        # a value that only some runs logged differs too
        shown = params.astype(object).fillna("<absent>").astype(str)
        params = params[shown.nunique(axis=1) > 1]
    metric_cols = sort_metric_names(
        c
        for c in runs.columns
        if c.startswith(("metrics." + SELECTED_PREFIX, "metrics." + BEST_ON_TEST_PREFIX))
    )
    metrics = runs[metric_cols].T.dropna(how="all")
    metrics.columns = labels
    metrics.index = metrics.index.str.removeprefix("metrics.").str.removeprefix(SELECTED_PREFIX)
    return params, metrics


def comparison_table(
    params: pd.DataFrame, metrics: pd.DataFrame, run_ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """`compare_runs`' two tables as one labelled table, as `co2net compare` prints and saves it.

    Columns: section (`run`, `data`, `parameter`, `selected model`, `best on test`), name (the
    tag or parameter, or `mAP@0.5`, `avg mAP 0.1:0.7`, `iteration`), unit (`%` for mAPs), then
    one per run (`run_labels`). run_ids: the runs' ids, as a first row `run / id`. mAPs are
    percentages written with 2 decimals; a value a run did not log is empty."""
    runs = list(metrics.columns)
    rows = [] if run_ids is None else [{"section": "run", "name": "id", "unit": ""}]
    if run_ids is not None:
        rows[0].update(zip(runs, map(str, run_ids), strict=True))
    rows += [
        {
            "section": "data" if name in DATA_TAGS else "parameter",
            "name": name,
            "unit": "",
            **values.to_dict(),
        }
        for name, values in params.astype(object).iterrows()
    ]
    for name, values in metrics.iterrows():
        best = name.startswith(BEST_ON_TEST_PREFIX)
        if name.endswith("iteration"):
            shown = {run: str(int(v)) if pd.notna(v) else None for run, v in values.items()}
            unit = ""
        else:
            shown = {run: f"{100 * v:.2f}" if pd.notna(v) else None for run, v in values.items()}
            unit = "%"
        rows.append(
            {
                "section": "best on test" if best else "selected model",
                "name": metric_label(name),
                "unit": unit,
                **shown,
            }
        )
    return pd.DataFrame(rows, columns=["section", "name", "unit", *runs])


# Terminal cells longer than this are shortened in the middle; the CSV keeps them whole.
MAX_CELL = 40


def _shorten(text: str, limit: int = MAX_CELL) -> str:
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


def fold_columns(frame: pd.DataFrame, width: int) -> list[str]:
    """`frame` (row names as index, one column per run) as text blocks no wider than `width`
    where possible: the runs that do not fit beside the row names continue in the next block.
    Missing values print as `-`, long cells are shortened (`MAX_CELL`)."""
    cells = frame.astype(object).map(lambda v: "-" if v is None or v != v else _shorten(str(v)))
    headers = [_shorten(str(c)) for c in cells.columns]
    names = [_shorten(str(i), 48) for i in cells.index]
    name_width = max((len(n) for n in names), default=0)
    col_width = [max([len(h), *(len(v) for v in cells.iloc[:, j])]) for j, h in enumerate(headers)]
    blocks: list[list[int]] = [[]]
    used = name_width
    for j, w in enumerate(col_width):
        if blocks[-1] and used + 2 + w > width:
            blocks.append([])
            used = name_width
        blocks[-1].append(j)
        used += 2 + w
    out = []
    for block in blocks:
        lines = [" " * name_width + "".join(f"  {headers[j]:>{col_width[j]}}" for j in block)]
        for i, name in enumerate(names):
            row = "".join(f"  {cells.iat[i, j]:>{col_width[j]}}" for j in block)
            lines.append(f"{name:<{name_width}}{row}")
        out.append("\n".join(lines))
    return out


def _headings(runs: list[str], ids) -> list[str]:
    """Run names cut to `MAX_CELL` at the end (overrides come last in a run name); where two
    cut names are equal, the run id ends them."""
    cut = [r if len(r) <= MAX_CELL else r[: MAX_CELL - 1] + "…" for r in runs]
    if ids is None:
        return cut
    return [
        c if cut.count(c) == 1 else f"{r[: MAX_CELL - 10]}… {ids[r][:8]}"
        for c, r in zip(cut, runs, strict=True)
    ]


def format_comparison(table: pd.DataFrame, width: int = 100) -> str:
    """What `co2net compare` prints of a `comparison_table` (with its `run / id` row): the
    runs, the data and parameters that differ (for one run: the data; its parameters are in
    the CSV), then the mAPs, each table folded to `width` columns."""
    sections = table["section"]
    runs = list(table.columns[3:])
    ids = table[sections == "run"].iloc[0, 3:] if (sections == "run").any() else None
    lines = ["Runs:" if len(runs) > 1 else "Run:"]
    for run in runs:  # the whole name, wrapped: the table headings may be shortened
        lead = "  " if ids is None else f"  {ids[run][:8]}  "
        lines += textwrap.wrap(run, width, initial_indent=lead, subsequent_indent=" " * len(lead))
    data = table[sections == "data"].set_index("name")[runs]
    params = table[sections == "parameter"].set_index("name")[runs]
    if len(runs) == 1:
        blocks = [("Data:", data), (f"Parameters: {len(params)}, in the CSV", None)]
    else:
        blocks = [
            ("Data that differs:" if len(data) else "Same data in every run.", data),
            ("Parameters that differ:" if len(params) else "No parameter differs.", params),
        ]
    headings = _headings(runs, ids)
    metrics = table[sections.isin(["selected model", "best on test"])]
    metrics = metrics.set_index(
        pd.Index(
            [
                f"{s} {n}" if s == "best on test" else n
                for s, n in zip(metrics["section"], metrics["name"], strict=True)
            ]
        )
    )[runs]
    blocks.append(("Metrics (mAP in %):", metrics))
    for title, frame in blocks:
        lines.append("")
        lines.append(title)
        if frame is not None and len(frame):
            frame = frame.rename_axis(None).set_axis(headings, axis=1)
            lines.append("\n\n".join(fold_columns(frame, width)))
    return "\n".join(lines)


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
