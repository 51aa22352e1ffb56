"""Detection mAP of the proposals against the test-subset ground truth (spec §6)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from co2net_pipeline import plots
from co2net_pipeline.evaluation import (
    detections_to_activitynet_json,
    evaluate_detections,
    subset_ground_truth,
)


def evaluate_proposals(
    proposals: pd.DataFrame,
    segments: pd.DataFrame,
    videos: pd.DataFrame,
    classlist: list[str],
    params: dict,
) -> tuple[dict, dict, pd.DataFrame, dict, plt.Figure]:
    """mAP per tIoU and averages (MLflow metrics), the JSON report, per-class AP, ActivityNet JSON, plot."""
    gt = subset_ground_truth(segments, videos, params["test_subset"])
    predictions = proposals[["video_id", "t_start", "t_end", "label", "score"]]
    result = evaluate_detections(predictions, gt, params["tiou"])
    metrics = {f"map_{t:g}": {"value": float(v), "step": 0} for t, v in result.map.items()}
    metrics.update(
        {
            f"avg_{k.replace(':', '-')}": {"value": float(v), "step": 0}
            for k, v in result.average.items()
        }
    )
    report = result.to_dict()
    report["data_source"] = params.get("data_source", "unknown")
    per_class = result.per_class_ap.copy()
    per_class.columns = [f"{t:g}" for t in per_class.columns]
    per_class.index.name = "class"
    title = f"test mAP ({report['data_source']} features)"
    return (
        metrics,
        report,
        per_class,
        detections_to_activitynet_json(proposals),
        plots.map_vs_tiou(result.map, title),
    )


def plot_video_examples(
    test_cas_store: dict,
    proposals: pd.DataFrame,
    segments: pd.DataFrame,
    videos: pd.DataFrame,
    classlist: list[str],
    params: dict,
) -> plt.Figure:
    """CAS, attention, ground truth and detections of the first `n_video_plots` test videos with GT."""
    gt = subset_ground_truth(segments, videos, params["test_subset"])
    chosen = [v for v in dict.fromkeys(gt["video_id"]) if v in test_cas_store][
        : params.get("n_video_plots", 4)
    ]
    return plots.video_examples(test_cas_store, proposals, gt, classlist, chosen)
