"""Train CO2-Net from the ingested tables in one call: weak labels, model selection, the
reference batch stream, the test curve, and everything recorded about the run (the model
artifact, metric histories, run tags). The training node only parses its parameters, calls
`fit_co2net` and hands the `FitResult` fields to the catalog.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from co2net_pipeline.method.losses import LossConfig
from co2net_pipeline.method.metric import subset_ground_truth
from co2net_pipeline.method.model import ModelConfig
from co2net_pipeline.method.proposals import ProposalParams
from co2net_pipeline.method.sampler import ReferenceBatchStream, multi_hot, split_pools
from co2net_pipeline.method.selection import (
    DetectionScorer,
    best_on_test,
    detection_metric_values,
    heldout_classification_map,
)
from co2net_pipeline.method.training import TrainConfig, TrainResult, select_device, train_model

logger = logging.getLogger(__name__)

# {metric: [{"value": v, "step": s}, ...]} (or one {"value", "step"}): what a metric-history
# dataset saves
MetricHistories = dict[str, Any]


@dataclass(frozen=True)
class ScoringSettings:
    """How the test set is scored during training.

    subset: the test videos' `subset` (`snippet_sampling.test_subset`); tiou: the mAP
    thresholds (`evaluation.tiou`); selection_average: the averaged-mAP range, e.g. "0.1:0.7",
    that `oracle_test` selects on and `best_on_test` reports; curve_every: test-curve period in
    iterations (`evaluation.test_curve_every`; 0 = no curve).
    """

    subset: str
    tiou: Sequence[float]
    selection_average: str
    curve_every: int


@dataclass
class FitResult:
    """What the training node saves.

    train: the loop's `TrainResult`; artifact: `trained_model` (selected weights, model config,
    class list, selection); training_metrics: `loss_<term>` every `log_every` iterations and
    `selection_score` at the scoring points; test_curve: the test-curve metrics by iteration;
    best_on_test: the test curve's best point (step 0; empty without a curve); tags: run tags
    (model selection, selected iteration, device; a warning tag for `oracle_test`).
    """

    train: TrainResult
    artifact: dict[str, Any]
    training_metrics: MetricHistories
    test_curve: MetricHistories
    best_on_test: MetricHistories
    tags: dict[str, str]


def fit_co2net(
    feature_store: Any,
    videos: pd.DataFrame,
    segments: pd.DataFrame,
    ambiguous_intervals: pd.DataFrame,
    classlist: Sequence[str],
    data_split: Mapping[str, list[str]],
    sampling_plan: pd.DataFrame,
    *,
    model_params: Mapping[str, Any],
    loss_cfg: LossConfig,
    train_cfg: TrainConfig,
    proposals: ProposalParams,
    scoring: ScoringSettings,
    reference_stream: bool,
    checkpoint_dir: Path | None,
    progress: bool,
    log_every: int,
) -> FitResult:
    """Train on `data_split["train"]` following `sampling_plan`; select per `train_cfg.selection`.

    feature_store: the ingested store (`.view(ids)`: video_id -> (T, 2D) features);
    model_params: the `model` parameters as configured (recorded in the artifact, plus
    `n_classes`); loss_cfg.n_similar becomes train_cfg.n_similar (the co-activity loss pairs
    exactly the sampler's pairs). `heldout` selection scores weak classification mAP on
    `data_split["heldout"]`; `oracle_test` the test-set average mAP, as the reference does
    (optimistic, tagged so). reference_stream: replay the reference's batch stream
    (`snippet_sampling.rng: original`), seeded with `train_cfg.seed` as the plan was.
    """
    # The ActivityNet pooling kernel follows training.max_seqlen (the artifact records it).
    model_params = dict(model_params) | {"max_seqlen": train_cfg.max_seqlen}
    model_cfg = ModelConfig.from_dict({**model_params, "n_classes": len(classlist)})
    loss_cfg = dataclasses.replace(loss_cfg, n_similar=train_cfg.n_similar)
    device = select_device(train_cfg.device)
    by_id = videos.set_index("video_id")
    # the train list (fill pool) plus the pair pools' videos (`snippet_sampling.dataset_class`)
    train_ids, fill, pairs = split_pools(videos, data_split)
    label_matrix = multi_hot(by_id.loc[train_ids, "labels"], classlist)
    selection_score, test_curve = _scorers(
        feature_store,
        (videos, segments, ambiguous_intervals),
        classlist,
        data_split,
        proposals,
        scoring,
        train_cfg.selection,
        device,
    )
    result = train_model(
        feature_store.view(train_ids),
        dict(zip(train_ids, label_matrix, strict=True)),
        sampling_plan,
        model_cfg,
        loss_cfg,
        train_cfg,
        checkpoint_dir=checkpoint_dir,
        selection_score=selection_score,
        progress=progress,
        reference_stream=(
            _reference_stream(train_cfg, label_matrix, by_id, train_ids, (fill, pairs))
            if reference_stream
            else None
        ),
        test_curve=test_curve,
        test_curve_every=scoring.curve_every,
    )
    return _fit_result(result, model_params, classlist, scoring.selection_average, log_every)


def _scorers(
    feature_store: Any,
    tables: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    classlist: Sequence[str],
    data_split: Mapping[str, list[str]],
    proposals: ProposalParams,
    scoring: ScoringSettings,
    selection: str,
    device: torch.device,
) -> tuple[Callable | None, Callable | None]:
    """(`selection_score(model, itr)` or None, `test_curve(model, itr)` or None); both share
    one test-set pass per iteration. tables: videos, segments, ambiguous intervals."""
    videos, segments, ambiguous_intervals = tables
    by_id = videos.set_index("video_id")
    score_test = None
    if selection == "oracle_test" or scoring.curve_every:
        test_ids = data_split["test"]
        score_test = _cached_by_iteration(
            DetectionScorer(
                feature_store.view(test_ids),
                classlist,
                proposals,
                subset_ground_truth(segments, videos, scoring.subset),
                scoring.tiou,
                ambiguous_intervals,
                device,
                video_labels=multi_hot(by_id.loc[test_ids, "labels"], classlist),
            )
        )
    selection_score = _selection_score(
        selection,
        feature_store,
        by_id,
        data_split,
        classlist,
        proposals.topk_divisor,
        device,
        score_test,
        scoring.selection_average,
    )
    if not scoring.curve_every:
        return selection_score, None
    return selection_score, lambda model, itr: detection_metric_values(score_test(model, itr))


def _fit_result(
    result: TrainResult,
    model_params: Mapping[str, Any],
    classlist: Sequence[str],
    average_key: str,
    log_every: int,
) -> FitResult:
    return FitResult(
        train=result,
        artifact=_model_artifact(result, model_params, classlist),
        training_metrics=_training_histories(result, log_every),
        test_curve=_as_histories(result.test_curve, "iteration"),
        best_on_test=_best_on_test(result.test_curve, average_key, result.selection),
        tags=_selection_tags(result),
    )


def _selection_tags(result: TrainResult) -> dict[str, str]:
    tags = {
        "model_selection": result.selection,
        "selected_iteration": str(result.selected_iteration),
        "device": result.device,
    }
    if result.selection == "oracle_test":
        tags["oracle_test_selection"] = "true: checkpoint chosen on the TEST set"
    return tags


def _training_histories(result: TrainResult, log_every: int) -> MetricHistories:
    """`training_metrics.*`: every loss term each `log_every` iterations, selection scores."""
    history = result.history
    logged = history[history["iteration"] % log_every == 0]
    metrics = _as_histories(logged.rename(columns=lambda c: f"loss_{c}"), "loss_iteration")
    if len(result.selection_scores):
        scores = result.selection_scores.rename(columns={"score": "selection_score"})
        metrics |= _as_histories(scores, "iteration")
    return metrics


def _model_artifact(
    result: TrainResult, model_params: Mapping[str, Any], classlist: Sequence[str]
) -> dict[str, Any]:
    """What `trained_model` stores: the selected weights and how to rebuild and name them."""
    return {
        "state_dict": result.state_dict,
        "model_config": dict(model_params) | {"n_classes": len(classlist)},
        "classlist": list(classlist),
        "selection": result.selection,
        "selected_iteration": int(result.selected_iteration),
    }


def _selection_score(
    selection: str,
    feature_store: Any,
    by_id: pd.DataFrame,
    data_split: Mapping[str, list[str]],
    classlist: Sequence[str],
    topk_divisor: int,
    device: torch.device,
    score_test: Callable | None,
    average_key: str,
) -> Callable | None:
    """`selection_score(model, iteration)` for `training.selection`, or None for `last`."""
    if selection == "heldout":
        if not data_split["heldout"]:
            raise ValueError(
                "training.selection is 'heldout' but snippet_sampling.heldout_fraction is 0"
            )
        heldout_features = feature_store.view(data_split["heldout"])
        heldout_labels = multi_hot(by_id.loc[data_split["heldout"], "labels"], classlist)
        return lambda model, iteration: heldout_classification_map(
            model, heldout_features, heldout_labels, device, topk_divisor
        )
    if selection == "oracle_test":
        return lambda model, iteration: float(score_test(model, iteration).average[average_key])
    return None


def _reference_stream(
    train_cfg: TrainConfig,
    label_matrix: Any,
    by_id: pd.DataFrame,
    train_ids: list[str],
    pools: tuple[Any, Any],
) -> ReferenceBatchStream:
    """The reference's batch stream, seeded with `training.seed` (as the plan node drew the
    plan's videos); pools: the (fill, pairs) masks over train_ids (`split_pools`)."""
    return ReferenceBatchStream(
        label_matrix,
        by_id.loc[train_ids, "n_snippets"].to_numpy(),
        seed=train_cfg.seed,
        batch_size=train_cfg.batch_size,
        n_similar=train_cfg.n_similar,
        max_seqlen=train_cfg.max_seqlen,
        video_ids=train_ids,
        fill=pools[0],
        pairs=pools[1],
    )


def _as_histories(frame: pd.DataFrame, step_column: str) -> MetricHistories:
    """Metric histories {column: [{value, step}]} of every column but the step."""
    if frame.empty:
        return {}
    steps = frame[step_column].astype(int).tolist()
    return {
        name: [{"value": float(v), "step": s} for s, v in zip(steps, frame[name], strict=True)]
        for name in frame.columns
        if name != step_column
    }


def _best_on_test(curve: pd.DataFrame, average_key: str, selection: str) -> MetricHistories:
    """`best_on_test.*` metrics of the test curve's best point (empty without a curve)."""
    best = best_on_test(curve, average_key)
    if best:
        logger.info(
            "best checkpoint on the test set (as papers report): avg mAP %s = %.2f at iteration "
            "%d; selected model (%s): see detection_metrics",
            average_key,
            100 * best[f"avg_{average_key.replace(':', '-')}"],
            int(best["iteration"]),
            selection,
        )
    return {name: {"value": value, "step": 0} for name, value in best.items()}


def _cached_by_iteration(scorer: DetectionScorer) -> Callable[[Any, int], Any]:
    """scorer(model) memoised per iteration: the selection score and the test curve share one
    pass when both fall on the same iteration."""
    cache: dict[int, object] = {}

    def score(model, iteration: int):
        if iteration not in cache:
            cache.clear()
            cache[iteration] = scorer(model)
        return cache[iteration]

    return score
