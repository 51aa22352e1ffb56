"""Detection mAP of the proposals against the test-subset ground truth (spec §6)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from co2net_pipeline.method.metric import evaluate_detections, subset_ground_truth
from co2net_pipeline.method.selection import detection_metric_values
from co2net_pipeline.params.schema import parse_group
from co2net_pipeline.reports import figures as plots
from co2net_pipeline.reports.evaluation_files import detections_to_activitynet_json


def evaluate_proposals(
    proposals: pd.DataFrame,
    segments: pd.DataFrame,
    videos: pd.DataFrame,
    classlist: list[str],
    params: dict,
    sampling_params: dict,
) -> tuple[dict, dict, pd.DataFrame, dict, plt.Figure]:
    """mAP per tIoU and averages (MLflow metrics), the JSON report, per-class AP, ActivityNet JSON, plot.

    The ground truth is that of `snippet_sampling.test_subset`, the videos inference ran on.
    """
    gt = subset_ground_truth(segments, videos, sampling_params["test_subset"])
    predictions = proposals[["video_id", "t_start", "t_end", "label", "score"]]
    result = evaluate_detections(predictions, gt, params["tiou"])
    metrics = {k: {"value": v, "step": 0} for k, v in detection_metric_values(result).items()}
    report = result.to_dict()
    per_class = result.per_class_ap.copy()
    per_class.columns = [f"{t:g}" for t in per_class.columns]
    per_class.index.name = "class"
    title = f"test mAP ({sampling_params['test_subset']} subset)"
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
    sampling_params: dict,
) -> plt.Figure:
    """CAS, attention, ground truth and detections of the first `n_video_plots` test videos with GT."""
    gt = subset_ground_truth(segments, videos, sampling_params["test_subset"])
    chosen = [v for v in dict.fromkeys(gt["video_id"]) if v in test_cas_store][
        : parse_group("evaluation", params).n_video_plots
    ]
    return plots.video_examples(test_cas_store, proposals, gt, classlist, chosen)
