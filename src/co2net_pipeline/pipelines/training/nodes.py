"""Training node: CO2-Net on the sampling plan, with explicit, recorded model selection."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from co2net_pipeline import plots
from co2net_pipeline.evaluation import subset_ground_truth
from co2net_pipeline.localization import ProposalParams
from co2net_pipeline.losses import LossConfig
from co2net_pipeline.model import ModelConfig
from co2net_pipeline.sampling import ReferenceBatchStream, multi_hot
from co2net_pipeline.schemas import parse_group
from co2net_pipeline.scoring import (
    DetectionScorer,
    best_on_test,
    detection_metric_values,
    heldout_classification_map,
)
from co2net_pipeline.tracking import set_run_tags
from co2net_pipeline.training import TrainConfig, select_device, train_model

logger = logging.getLogger(__name__)


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
    sampling_params: dict,
) -> tuple[dict, pd.DataFrame, dict, plt.Figure, dict, dict]:
    """Train CO2-Net; returns the model artifact, loss history, MLflow metric history, loss
    plot, the test curve (`test_curve.*` histories) and its best point (`best_on_test.*`).

    Model selection (`training.selection`): `last` keeps the final weights; `heldout` keeps the
    best weak classification mAP on held-out training videos; `oracle_test` keeps the best
    test-set average mAP, as the reference does — numbers selected that way are optimistic and
    tagged so. `evaluation.test_curve_every` > 0 scores the test set every N iterations without
    selecting anything: `best_on_test` is then the paper-style figure beside the honest one.
    """
    model_cfg = ModelConfig.from_dict({**model_params, "n_classes": len(classlist)})
    train_cfg = TrainConfig.from_dict(training_params)
    # the co-activity loss pairs exactly the sampler's pairs: training.n_similar is the one key
    loss_cfg = LossConfig.from_dict({**loss_params, "n_similar": train_cfg.n_similar})
    device = select_device(train_cfg.device)
    by_id = videos.set_index("video_id")
    train_ids = data_split["train"]
    features = feature_store.view(train_ids)
    label_matrix = multi_hot(by_id.loc[train_ids, "labels"], classlist)
    labels = dict(zip(train_ids, label_matrix, strict=True))
    prop = ProposalParams.from_dict(proposal_params)
    evaluation = parse_group("evaluation", evaluation_params)
    average_key, curve_every = evaluation.selection_average, evaluation.test_curve_every
    score_test = None
    if train_cfg.selection == "oracle_test" or curve_every:
        score_test = _cached_by_iteration(
            DetectionScorer(
                features=feature_store.view(data_split["test"]),
                classlist=classlist,
                proposals=prop,
                ground_truth=subset_ground_truth(segments, videos, sampling_params["test_subset"]),
                tiou=evaluation_params["tiou"],
                ambiguous=ambiguous_intervals,
                device=device,
            )
        )

    selection_score = None
    if train_cfg.selection == "heldout":
        if not data_split["heldout"]:
            raise ValueError(
                "training.selection is 'heldout' but snippet_sampling.heldout_fraction is 0"
            )
        heldout_features = feature_store.view(data_split["heldout"])
        heldout_labels = multi_hot(by_id.loc[data_split["heldout"], "labels"], classlist)

        def selection_score(model, iteration):
            return heldout_classification_map(
                model, heldout_features, heldout_labels, device, prop.topk_divisor
            )

    elif train_cfg.selection == "oracle_test":

        def selection_score(model, iteration):
            return float(score_test(model, iteration).average[average_key])

    reference_stream = None
    if parse_group("snippet_sampling", sampling_params).rng == "original":
        reference_stream = ReferenceBatchStream(
            label_matrix,
            by_id.loc[train_ids, "n_snippets"].to_numpy(),
            seed=train_cfg.seed,
            batch_size=train_cfg.batch_size,
            n_similar=train_cfg.n_similar,
            max_seqlen=train_cfg.max_seqlen,
            video_ids=train_ids,
        )

    node_keys = parse_group("training", training_params)
    checkpoint_dir = Path(node_keys.checkpoint_dir)
    result = train_model(
        features,
        labels,
        sampling_plan,
        model_cfg,
        loss_cfg,
        train_cfg,
        checkpoint_dir=checkpoint_dir,
        selection_score=selection_score,
        progress=node_keys.progress,
        reference_stream=reference_stream,
        test_curve=(
            (lambda model, itr: detection_metric_values(score_test(model, itr)))
            if curve_every
            else None
        ),
        test_curve_every=curve_every,
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
    every = parse_group("training", training_params).log_every
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
    curve = result.test_curve
    curve_metrics = {
        name: [
            {"value": float(v), "step": int(s)}
            for s, v in zip(curve["iteration"], curve[name], strict=True)
        ]
        for name in curve.columns
        if name != "iteration"
    }
    best = best_on_test(curve, average_key)
    if best:
        logger.info(
            "best checkpoint on the test set (as papers report): avg mAP %s = %.2f at iteration "
            "%d; selected model (%s): see detection_metrics",
            average_key,
            100 * best[f"avg_{average_key.replace(':', '-')}"],
            int(best["iteration"]),
            train_cfg.selection,
        )
    best_metrics = {name: {"value": value, "step": 0} for name, value in best.items()}
    return artifact, history, metrics, plots.loss_curves(history), curve_metrics, best_metrics


def _cached_by_iteration(scorer: DetectionScorer):
    """scorer(model) memoised per iteration: the selection score and the test curve share one
    pass when both fall on the same iteration."""
    cache: dict[int, object] = {}

    def score(model, iteration: int):
        if iteration not in cache:
            cache.clear()
            cache[iteration] = scorer(model)
        return cache[iteration]

    return score
