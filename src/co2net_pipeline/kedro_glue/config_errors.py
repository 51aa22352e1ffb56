"""Configuration Kedro cannot load, as one line naming the file or the key.

Kedro loads `conf/` when the session first asks for parameters or the catalog; a YAML file it
cannot read (an alias bomb in `conf/local`, a `!!python/...` tag) or a value it cannot resolve
(`--params "training.seed=${oc.env:HOME}"`) is otherwise a 100-230-line traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["config_problem", "yaml_problem"]

_SUFFIXES = (".yml", ".yaml", ".json")


def yaml_problem(exc: BaseException) -> str:
    """The useful part of a YAML or OmegaConf error, in one line: its problem's first sentence,
    without the "in <unicode string>" marks and the help links."""
    problem = str(getattr(exc, "problem", None) or exc).strip()
    first = problem.splitlines()[0] if problem else type(exc).__name__
    return " ".join(first.split(". ")[0].split()).rstrip(".")


def _config_files(loader: Any, key: str) -> list[Path]:
    """The files of the base and run environments that `loader[key]` reads."""
    conf = Path(loader.conf_source)
    envs = dict.fromkeys([loader.base_env, loader.env or loader.default_run_env])
    patterns = loader.config_patterns.get(key, [])
    found: dict[Path, None] = {}
    for env in (e for e in envs if e):
        for pattern in patterns:
            for path in sorted((conf / env).glob(pattern)):
                if path.is_file() and path.suffix in _SUFFIXES:
                    found.setdefault(path)
    return list(found)


def _unreadable_file(loader: Any, key: str) -> str | None:
    """`<file>: line N: <problem>` for the first file of `key` that YAML cannot read."""
    from omegaconf import OmegaConf

    for path in _config_files(loader, key):
        try:
            OmegaConf.load(path)
        except Exception as exc:  # noqa: BLE001 - yaml's and omegaconf's errors alike
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = f": line {mark.line + 1}" if mark is not None else ""
            return f"{path}{line}: cannot read it ({yaml_problem(exc)})"
    return None


def config_problem(loader: Any, key: str) -> str | None:
    """One line when Kedro's config `loader` cannot load `key` ("parameters", "catalog"):
    the file YAML cannot read, or the key whose value cannot be resolved; None when it loads."""
    try:
        loader[key]
    except Exception as exc:  # noqa: BLE001 - any failure here would be Kedro's traceback
        if isinstance(exc, RecursionError):
            return f"{key}: the configuration is nested too deeply to load"
        file_line = _unreadable_file(loader, key)
        if file_line:
            return file_line
        if key != "parameters" or "km." in str(exc):
            # kedro-mlflow registers its `km.` resolvers after this check: Kedro decides
            return None
        full_key = getattr(exc, "full_key", None)
        where = f"{key} {full_key}" if full_key else key
        return (
            f"{where}: cannot be loaded ({yaml_problem(exc)}); a value may use "
            "${globals:...} and ${runtime_params:...} only"
        )
    return None
