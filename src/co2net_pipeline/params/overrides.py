"""Parameter dictionaries and their overrides: merging, flattening, and what one configuration
of a study (a seed, an ablation) changes.

The lowest-level parameter helpers, shared by the schema (`params.schema`), the Kedro hooks,
the pipelines and both study runners (`studies.in_process`, `studies.airflow`). Standard
library only: Airflow imports this when it parses a DAG file.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ABLATION_INFO_KEYS",
    "PARAM_GROUPS",
    "STUDIES",
    "ablation_overrides",
    "as_list",
    "configuration_name",
    "configuration_overrides",
    "configuration_params",
    "flatten",
    "merge_overrides",
    "seed_list",
    "select_ablations",
]

# Parameter groups a configuration may override (each is a `params:<group>` dictionary).
PARAM_GROUPS = (
    "model",
    "loss",
    "training",
    "snippet_sampling",
    "inference",
    "proposals",
    "evaluation",
)
# Keys of an ablation entry that describe it rather than override parameters.
ABLATION_INFO_KEYS = ("group", "paper_avg")
STUDIES = ("seeds", "ablations")
# A configuration name becomes a directory, an MLflow run name and an Airflow task id.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """`base` with `overrides` merged in recursively (nested mappings merge, anything else replaces)."""
    out = copy.deepcopy(dict(base))
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a.b": 1}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def as_list(value: Any) -> list:
    """A list parameter, also given as a whitespace-separated string (`kedro run --params`
    splits on commas, so `--params "studies.seeds=1 2 3"` is the way to pass a list there)."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, int | float):
        return [value]
    return list(value)


def configuration_params(
    params: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    checkpoint_subdir: str | None = None,
) -> dict[str, Any]:
    """The parameter groups of one configuration.

    params: {group: dict} for the `PARAM_GROUPS`; overrides: {group: {key: value}} merged in
    (see `configuration_overrides`). checkpoint_subdir: checkpoints go to
    `training.checkpoint_dir/<checkpoint_subdir>`, so the configurations of a study do not
    overwrite each other's (or train_eval's) `last.pt`.
    """
    unknown = sorted(set(overrides or {}) - set(PARAM_GROUPS))
    if unknown:
        raise ValueError(
            f"overrides for unknown parameter groups {unknown}; allowed: {list(PARAM_GROUPS)}"
        )
    missing = [g for g in PARAM_GROUPS if g not in params]
    if missing:
        raise ValueError(f"configuration_params: parameter groups {missing} are missing")
    out = merge_overrides({g: params[g] for g in PARAM_GROUPS}, overrides)
    if checkpoint_subdir:
        root = out["training"].get("checkpoint_dir", "data/06_models/checkpoints")
        out["training"]["checkpoint_dir"] = str(Path(root) / checkpoint_subdir)
    return out


def ablation_overrides(entry: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """The parameter overrides of one `studies.ablations` entry (its `group`/`paper_avg` removed)."""
    entry = dict(entry or {})
    unknown = sorted(set(entry) - set(PARAM_GROUPS) - set(ABLATION_INFO_KEYS))
    if unknown:
        raise ValueError(
            f"studies.ablations.{name}: unknown keys {unknown}; "
            f"allowed: {list(PARAM_GROUPS) + list(ABLATION_INFO_KEYS)}"
        )
    return {k: v for k, v in entry.items() if k in PARAM_GROUPS}


def select_ablations(
    ablations: Mapping[str, Any], selection: Sequence[str] | str | None
) -> list[str]:
    """Names to run: all of `ablations` (file order) or `selection` (its order), checked."""
    selection = [str(n) for n in as_list(selection)]
    if not selection:
        return list(ablations)
    missing = [n for n in selection if n not in ablations]
    if missing:
        raise ValueError(
            f"studies.ablation_selection names {missing}, not in studies.ablations {list(ablations)}"
        )
    return list(dict.fromkeys(selection))


def seed_list(studies: Mapping[str, Any]) -> list[int]:
    """`studies.seeds` as distinct ints (a list or a whitespace-separated string)."""
    seeds = [int(s) for s in as_list(studies.get("seeds"))]
    if not seeds:
        raise ValueError("studies.seeds is empty: give at least one seed, e.g. [3552, 1, 2]")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"studies.seeds has duplicates: {seeds}")
    return seeds


def configuration_name(study: str, configuration: Any) -> str:
    """`seed_<n>` for a seed, the ablation's name for an ablation; checked to be usable as a
    directory name and an Airflow task id."""
    if study == "seeds":
        name = f"seed_{int(configuration)}"
    elif study == "ablations":
        name = str(configuration)
    else:
        raise ValueError(
            f"unknown study {study!r}; expected one of {list(STUDIES)} "
            "(the `study` key of the DAG's section in conf/airflow/airflow.yml)"
        )
    if not _NAME.match(name):
        raise ValueError(f"{study}: configuration name {name!r} is not [A-Za-z0-9_.-]+")
    return name


def configuration_overrides(
    studies: Mapping[str, Any], study: str, configuration: Any
) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(name, parameter overrides, MLflow tags) of one configuration of a study: what both
    runners (in-process nested runs, Airflow-dispatched `kedro run`s) apply.

    studies: the `studies` parameters (conf/base/parameters_studies.yml). A seed sets both the
    sampling plan's and the weights' seed; an ablation is its `studies.ablations` entry.
    """
    name = configuration_name(study, configuration)
    if study == "seeds":
        seed = int(configuration)
        overrides = {"training": {"seed": seed}, "snippet_sampling": {"seed": seed}}
        return name, overrides, {"seed": str(seed)}
    ablations = studies.get("ablations") or {}
    select_ablations(ablations, [name])
    entry = ablations[name] or {}
    return name, ablation_overrides(entry, name), {"ablation_group": str(entry.get("group", ""))}
