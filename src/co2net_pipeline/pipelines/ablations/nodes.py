"""The paper's ablations (Tables 3-6): one nested MLflow run per configuration, one table."""

from __future__ import annotations

import pandas as pd

from co2net_pipeline.studies import (
    StudyData,
    ablation_overrides,
    configuration_params,
    detection_columns,
    flatten,
    results_table,
    run_configuration,
    select_ablations,
    tag_study_run,
    to_markdown,
)

REFERENCE = "full"


def _describe(overrides: dict) -> str:
    flat = flatten(overrides)
    return "; ".join(f"{k}={v}" for k, v in flat.items()) or "(reference)"


def run_ablations(
    feature_store,
    videos: pd.DataFrame,
    segments: pd.DataFrame,
    ambiguous_intervals: pd.DataFrame,
    classlist: list[str],
    data_split: dict,
    studies: dict,
    **params: dict,
) -> tuple[dict, pd.DataFrame, str]:
    """Train and evaluate every configuration of `studies.ablations` (or `ablation_selection`).

    Each entry overrides parameter groups (`model`, `loss`, ...) of the base parameters; its
    `group` names the paper table and `paper_avg` the paper's THUMOS14 avg mAP 0.1:0.7 (%), for
    reference only. Returns the parent run's metrics (`<configuration>.<metric>`), the
    comparison table (one row per configuration, fractions; `delta_<headline>` against the
    `full` configuration when it ran) and the same table in Markdown (percent).
    """
    ablations = studies.get("ablations") or {}
    names = select_ablations(ablations, studies.get("ablation_selection"))
    if not names:
        raise ValueError("studies.ablations is empty")
    data = StudyData(
        feature_store, videos, segments, ambiguous_intervals, list(classlist), data_split
    )
    tag_study_run("ablations", data)
    results, info = [], []
    for name in names:
        entry = ablations[name] or {}
        overrides = ablation_overrides(entry, name)
        group = str(entry.get("group", ""))
        results.append(
            run_configuration(
                data,
                configuration_params(params, overrides, checkpoint_subdir=f"ablations/{name}"),
                name=name,
                study="ablations",
                tags={"ablation_group": group},
            )
        )
        paper = entry.get("paper_avg")
        info.append(
            {
                "group": group,
                "overrides": _describe(overrides),
                "paper_avg": float(paper) / 100 if paper is not None else float("nan"),
            }
        )

    table = pd.concat(
        [pd.DataFrame(info, index=names), results_table(results, "configuration")], axis=1
    )
    table.index.name = "configuration"
    columns = detection_columns(table)
    headline = studies.get("headline_metric") or "avg_0.1-0.7"
    if headline not in columns:
        headline = [c for c in columns if c.startswith("avg_")][-1]
    if REFERENCE in table.index:
        table[f"delta_{headline}"] = table[headline] - table.loc[REFERENCE, headline]

    metrics = {
        f"{name}.{column}": {"value": float(table.loc[name, column]), "step": 0}
        for name in names
        for column in columns
    }

    shown_columns = [
        "group",
        "overrides",
        *[c for c in columns if c == "map_0.5" or c.startswith("avg_")],
    ]
    shown_columns += [c for c in (f"delta_{headline}", "paper_avg") if c in table.columns]
    shown = table[shown_columns + ["loss_total_final"]]
    markdown = to_markdown(
        shown,
        percent_columns=[c for c in shown_columns if c not in ("group", "overrides")],
        title="Ablations: detection mAP (%)",
        note=(
            f"delta: {headline} minus the `{REFERENCE}` configuration's. paper_avg: the paper's THUMOS14 "
            "I3D avg mAP 0.1:0.7, for orientation only (other data and schedule). "
            "loss_total_final: mean total loss over the last 10 % of the iterations."
        ),
    )
    return metrics, table, markdown
