"""Run provenance for MLflow: git commit, environment, resolved configuration."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import yaml
from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)


def git_commit(project_path: Path) -> str:
    """The checked-out commit (with `-dirty` when the tree has changes), or `unknown`."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=project_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


class ProjectHooks:
    """Tags every tracked run with its provenance once the MLflow run is open."""

    def __init__(self) -> None:
        self._context = None
        self._logged_run: str | None = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._context = context

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async, run_id) -> None:
        import mlflow

        run = mlflow.active_run()
        if run is None or self._context is None or self._logged_run == run.info.run_id:
            return
        self._logged_run = run.info.run_id
        context = self._context
        params = context.config_loader["parameters"]
        mlflow.set_tags(
            {
                "git_commit": git_commit(Path(context.project_path)),
                "kedro_env": context.env or "local",
                "data_source": _data_source(params),
            }
        )
        mlflow.log_text(
            yaml.safe_dump(_plain(params), sort_keys=True), "config/resolved_parameters.yml"
        )


def _data_source(params) -> str:
    ingestion = params.get("feature_ingestion", {}) or {}
    return "synthetic" if ingestion.get("synthetic", False) else "user_features"


def _plain(value):
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
