"""Training node: CO2-Net on the sampling plan, with explicit, recorded model selection."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from co2net_pipeline.method.fit import ScoringSettings, fit_co2net
from co2net_pipeline.params.schema import parse_config, parse_group
from co2net_pipeline.reports import figures as plots


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
) -> tuple[dict, pd.DataFrame, dict, plt.Figure, dict, dict, dict]:
    """Train CO2-Net (`method.fit.fit_co2net`); returns the model artifact, loss history, MLflow
    metric history, loss plot, the test curve (`test_curve.*` histories), its best point
    (`best_on_test.*`) and the run tags (`training_tags`).

    Model selection (`training.selection`): `last` keeps the final weights; `heldout` keeps the
    best weak classification mAP on held-out training videos; `oracle_test` keeps the best
    test-set average mAP, as the reference does — numbers selected that way are optimistic and
    tagged so. `evaluation.test_curve_every` > 0 scores the test set every N iterations without
    selecting anything: `best_on_test` is then the paper-style figure beside the honest one.
    """
    # One parse per group: `training` holds the loop's TrainConfig and the node's own keys.
    training = parse_group("training", training_params)
    evaluation = parse_group("evaluation", evaluation_params)
    fitted = fit_co2net(
        feature_store,
        videos,
        segments,
        ambiguous_intervals,
        classlist,
        data_split,
        sampling_plan,
        model_params=model_params,
        loss_cfg=parse_config("loss", loss_params),
        train_cfg=training.config(),
        proposals=parse_config("proposals", proposal_params),
        scoring=ScoringSettings(
            subset=sampling_params["test_subset"],
            tiou=evaluation.tiou,
            selection_average=evaluation.selection_average,
            curve_every=evaluation.test_curve_every,
        ),
        reference_stream=parse_group("snippet_sampling", sampling_params).rng == "original",
        checkpoint_dir=Path(training.checkpoint_dir),
        progress=training.progress,
        log_every=training.log_every,
    )
    history = fitted.train.history
    return (
        fitted.artifact,
        history,
        fitted.training_metrics,
        plots.loss_curves(history),
        fitted.test_curve,
        fitted.best_on_test,
        fitted.tags,
    )
