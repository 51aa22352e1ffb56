"""Training node: CO2-Net on the sampling plan, with explicit, recorded model selection."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from co2net_pipeline import plots
from co2net_pipeline.evaluation import evaluate_detections
from co2net_pipeline.inference import run_inference
from co2net_pipeline.localization import ProposalParams, localize_videos, video_scores
from co2net_pipeline.losses import LossConfig
from co2net_pipeline.model import ModelConfig
from co2net_pipeline.pipelines.evaluation.nodes import test_ground_truth
from co2net_pipeline.pipelines.snippet_sampling.nodes import multi_hot
from co2net_pipeline.tracking import set_run_tags
from co2net_pipeline.training import TrainConfig, select_device, train_model

logger = logging.getLogger(__name__)


def heldout_classification_map(
    model, features: dict, labels: np.ndarray, device, topk_divisor: int = 10
) -> float:
    """Weak-label selection score: mean over classes of the AP of video-level scores (no temporal labels)."""
    outputs = run_inference(model, features, device)
    scores = np.stack(
        [video_scores(o["cas"], o["attention"], topk_divisor) for o in outputs.values()]
    )
    present = labels.sum(axis=0) > 0
    return float(
        np.mean(
            [average_precision_score(labels[:, c], scores[:, c]) for c in np.flatnonzero(present)]
        )
    )


def train(
    feature_store,
    videos: pd.DataFrame,
    segments: pd.DataFrame,
    ambiguous_intervals: pd.DataFrame,
    classlist: list[str],
    data_split: dict,
    sampling_plan: pd.DataFrame,
    model_params: dict,
    loss_params: dict,
    training_params: dict,
    proposal_params: dict,
    evaluation_params: dict,
) -> tuple[dict, pd.DataFrame, dict, plt.Figure]:
    """Train CO2-Net; returns the model artifact, loss history, MLflow metric history and loss plot.

    Model selection (`training.selection`): `last` keeps the final weights; `heldout` keeps the best
    weak classification mAP on held-out training videos; `oracle_test` keeps the best test-set
    average mAP, as the reference does — numbers selected that way are optimistic and tagged so.
    """
    model_cfg = ModelConfig.from_dict({**model_params, "n_classes": len(classlist)})
    loss_cfg = LossConfig.from_dict(loss_params)
    train_cfg = TrainConfig.from_dict(training_params)
    device = select_device(train_cfg.device)
    by_id = videos.set_index("video_id")
    train_ids = data_split["train"]
    features = feature_store.load_all(train_ids)
    label_matrix = multi_hot(by_id.loc[train_ids, "labels"], classlist)
    labels = dict(zip(train_ids, label_matrix, strict=True))

    selection_score = None
    if train_cfg.selection == "heldout":
        if not data_split["heldout"]:
            raise ValueError(
                "training.selection is 'heldout' but snippet_sampling.heldout_fraction is 0"
            )
        heldout_features = feature_store.load_all(data_split["heldout"])
        heldout_labels = multi_hot(by_id.loc[data_split["heldout"], "labels"], classlist)

        def selection_score(model, iteration):
            return heldout_classification_map(model, heldout_features, heldout_labels, device)

    elif train_cfg.selection == "oracle_test":
        test_features = feature_store.load_all(data_split["test"])
        gt = test_ground_truth(segments, videos, evaluation_params["test_subset"])
        prop = ProposalParams.from_dict(proposal_params)
        average_key = evaluation_params.get("selection_average", "0.1:0.7")

        def selection_score(model, iteration):
            outputs = run_inference(model, test_features, device)
            dets = localize_videos(
                {v: (o["cas"], o["attention"]) for v, o in outputs.items()},
                classlist,
                prop,
                ambiguous_intervals if prop.ambiguous_filter else None,
            )
            result = evaluate_detections(
                dets[["video_id", "t_start", "t_end", "label", "score"]],
                gt,
                evaluation_params["tiou"],
            )
            return float(result.average[average_key])

    checkpoint_dir = Path(training_params.get("checkpoint_dir", "data/06_models/checkpoints"))
    result = train_model(
        features,
        labels,
        sampling_plan,
        model_cfg,
        loss_cfg,
        train_cfg,
        checkpoint_dir=checkpoint_dir,
        selection_score=selection_score,
        progress=training_params.get("progress", True),
    )
    set_run_tags(
        {
            "model_selection": train_cfg.selection,
            "selected_iteration": str(result.selected_iteration),
            "device": str(device),
            **(
                {"oracle_test_selection": "true: checkpoint chosen on the TEST set"}
                if train_cfg.selection == "oracle_test"
                else {}
            ),
        }
    )
    artifact = {
        "state_dict": result.state_dict,
        "model_config": model_params | {"n_classes": len(classlist)},
        "classlist": list(classlist),
        "selection": train_cfg.selection,
        "selected_iteration": int(result.selected_iteration),
    }
    history = result.history
    every = max(1, int(training_params.get("log_every", 10)))
    logged = history[history["iteration"] % every == 0]
    metrics = {
        f"loss_{term}": [
            {"value": float(v), "step": int(s)}
            for s, v in zip(logged["iteration"], logged[term], strict=True)
        ]
        for term in history.columns
        if term != "iteration"
    }
    if result.selection_scores is not None and len(result.selection_scores):
        metrics["selection_score"] = [
            {"value": float(v), "step": int(s)}
            for s, v in zip(
                result.selection_scores["iteration"], result.selection_scores["score"], strict=True
            )
        ]
    return artifact, history, metrics, plots.loss_curves(history)
