"""Kedro project settings."""

from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog

from co2net_pipeline.kedro_glue import terminal
from co2net_pipeline.kedro_glue.hooks import ProjectHooks
from co2net_pipeline.kedro_glue.parameter_hook import ParameterCheckHook
from co2net_pipeline.kedro_glue.run_guard import (
    DiskFullHook,
    InterruptHook,
    OutputRollbackHook,
    RunLockHook,
    TrackingCheckHook,
)

# ParameterCheckHook: environment and parameters checked before anything runs (fail fast).
# TrackingCheckHook: the MLflow store can take the run; InterruptHook: Ctrl-C / SIGTERM mark it
# KILLED; RunLockHook: one run per project at a time. Pluggy calls the last registered first,
# so before the pipeline: parameters, tracking store, signal handlers, lock (the lock is taken
# once nothing else can refuse the run); OutputRollbackHook opens its journal of the run's
# catalog outputs after all of them, and rolls it back first when the run fails, before
# DiskFullHook's one line, which comes last of all.
HOOKS = (
    DiskFullHook(),
    RunLockHook(),
    OutputRollbackHook(),
    InterruptHook(),
    TrackingCheckHook(),
    ParameterCheckHook(),
    ProjectHooks(),
)

# kedro-viz's hooks stay on (its Workflow tab and dataset statistics need them): they only
# count the rows of DataFrames and stat the files of the datasets a run touches.

terminal.install()  # known library warnings filtered, plain wide logs when redirected

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment (conf/thumos14, ...) overrides single keys, not whole groups.
    "merge_strategy": {"parameters": "soft", "globals": "soft"},
    "config_patterns": {
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
    },
}

DATA_CATALOG_CLASS = DataCatalog
