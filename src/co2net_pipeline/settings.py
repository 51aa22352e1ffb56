"""Kedro project settings."""

from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog

from co2net_pipeline.hooks import ProjectHooks

HOOKS = (ProjectHooks(),)

# kedro-viz's dataset-statistics hook would open every HDF5 store after each run.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-viz",)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment (conf/thumos14, ...) overrides single keys, not whole parameter groups.
    "merge_strategy": {"parameters": "soft"},
    "config_patterns": {
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
    },
}

DATA_CATALOG_CLASS = DataCatalog
