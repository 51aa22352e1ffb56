"""The train_eval chain for several seeds: one nested MLflow run per seed, mean ± std of every mAP."""

from __future__ import annotations

from typing import Any

import pandas as pd

from co2net_pipeline.params.overrides import PARAM_GROUPS
from co2net_pipeline.pipelines.train_eval.pipeline import create_configuration_pipeline
from co2net_pipeline.studies.in_process import run_seed_study


def train_eval_seeds(studies: dict, **inputs: Any) -> tuple[dict, pd.DataFrame, str]:
    """`studies.run_seed_study` on the catalog's data: inputs are the configuration chain's
    datasets by name and the `PARAM_GROUPS` parameter dictionaries by group."""
    params = {k: v for k, v in inputs.items() if k in PARAM_GROUPS}
    data = {k: v for k, v in inputs.items() if k not in PARAM_GROUPS}
    return run_seed_study(create_configuration_pipeline(), data, params, studies)
