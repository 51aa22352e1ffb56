"""The train_eval chain for several seeds: one nested MLflow run per seed, mean ± std of every mAP."""

from __future__ import annotations

import pandas as pd

from co2net_pipeline.studies import (
    StudyData,
    as_list,
    configuration_params,
    detection_columns,
    mean_std,
    results_table,
    run_configuration,
    tag_study_run,
    to_markdown,
)


def _seeds(studies: dict) -> list[int]:
    seeds = [int(s) for s in as_list(studies.get("seeds"))]
    if not seeds:
        raise ValueError("studies.seeds is empty: give at least one seed, e.g. [3552, 1, 2]")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"studies.seeds has duplicates: {seeds}")
    return seeds


def train_eval_seeds(
    feature_store,
    videos: pd.DataFrame,
    segments: pd.DataFrame,
    ambiguous_intervals: pd.DataFrame,
    classlist: list[str],
    data_split: dict,
    studies: dict,
    **params: dict,
) -> tuple[dict, pd.DataFrame, str]:
    """Train and evaluate once per seed of `studies.seeds`.

    A seed sets both `training.seed` (weights, dropout) and `snippet_sampling.seed` (the
    sampling plan, rebuilt per seed); the data split is the catalog's. params: the parameter
    groups (`model`, `loss`, `training`, ...). Returns the parent run's metrics
    (`<metric>_mean`, `<metric>_std` for every mAP and average; sample std), the table (one row
    per seed, then `mean` and `std`; fractions) and the same table in Markdown (percent).
    """
    seeds = _seeds(studies)
    data = StudyData(
        feature_store, videos, segments, ambiguous_intervals, list(classlist), data_split
    )
    tag_study_run("seeds", data)
    results = [
        run_configuration(
            data,
            configuration_params(params, seed=seed, checkpoint_subdir=f"seeds/seed_{seed}"),
            name=f"seed_{seed}",
            study="seeds",
            tags={"seed": str(seed)},
        )
        for seed in seeds
    ]
    per_seed = results_table(results, "seed").drop(columns="selected_iteration")
    per_seed.index = pd.Index([str(s) for s in seeds], name="seed")
    columns = [*detection_columns(per_seed), "loss_total_final"]
    mean, std = mean_std(per_seed, columns)
    summary = pd.DataFrame([mean, std], index=["mean", "std"])
    table = pd.concat([per_seed, summary])
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
        title=f"Detection mAP (%) over {len(seeds)} seeds (loss_total_final: mean total loss of the last 10 % iterations)",
        note="std: sample standard deviation (ddof=1). Each seed is a nested MLflow run (tag study=seeds).",
    )
    return metrics, table, markdown
