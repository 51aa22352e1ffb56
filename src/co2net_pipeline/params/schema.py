"""The parameter schema: every key of every `conf/*/parameters*.yml` group, its type, its range or
choices and its default, in one place (pydantic models, one per group).

`conf/base/parameters_*.yml` prints these defaults (a test keeps them equal) and an environment
(`conf/thumos14`, ...) overrides single keys. `validate_parameters` checks the groups a pipeline
reads, the rules that tie keys together (`training.n_similar <= training.batch_size / 2`, ...)
and every ablation configuration merged onto the base;
`co2net_pipeline.kedro_glue.parameter_hook.ParameterCheckHook` runs it before the first node, so a mistyped
or out-of-range key fails in one line naming the key, its value and the rule
(`training.lr=-1: must be > 0`) before any data is read.

The maths-side configuration objects (`ModelConfig`, `LossConfig`, `TrainConfig`,
`ProposalParams`, `ValidationParams`, `SyntheticParams`) stay plain dataclasses with the
reference defaults; their keys here are the same (tests check it). This module imports neither
torch nor Kedro (only pydantic and the standard library at the top of `studies`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from co2net_pipeline.studies.in_process import PARAM_GROUPS, merge_overrides

__all__ = [
    "GROUPS",
    "ParameterError",
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


# --------------------------------------------------------------------------------------------
# feature_ingestion (data/validation.py: ValidationParams)


class ValidationSchema(_Group):
    length_tolerance: NonNegFloat = 0.1
    length_tolerance_abs: NonNegInt = 2
    min_snippets: PositiveInt = 11
    drop_short_videos: bool | None = None
    clip_segments_to_duration: bool = False
    drop_empty_segments: bool = False


class FeatureIngestionSchema(_Group):
    # "synthetic": the embedded set; else a label for real features (thumos14_i3d, ...)
    data_source: str = "synthetic"
    feature_dim: PositiveInt = 32
    dtype: Literal["float32", "float16"] = "float32"
    validation: ValidationSchema = ValidationSchema()


class RawDataSchema(_Group):
    """Where the raw layer reads (conf/base/globals.yml `raw_data`; catalog `raw_features`,
    `raw_annotations`). Present in the parameters only when given for one run
    (`--params raw_data.features=...`); the catalog reads it, no node does."""

    features: str | None = None
    annotations: str | None = None
    dataset_name: str | None = None


# Keys that left the parameters for the catalog's raw layer, and where they went.
MOVED = {
    "feature_ingestion.features_path": "raw_data.features (conf/base/globals.yml, or --params "
    "raw_data.features=PATH)",
    "feature_ingestion.annotations_path": "raw_data.annotations (conf/base/globals.yml)",
    "feature_ingestion.dataset_name": "raw_data.dataset_name (conf/base/globals.yml)",
    "feature_ingestion.format": "the raw_features dataset's type (conf/base/catalog.yml)",
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


# --------------------------------------------------------------------------------------------
# model (model/co2net.py: ModelConfig; n_classes comes from the class list)


class ModelSchema(_Group):
    feature_dim: PositiveInt = 32
    attention_hidden: PositiveInt = 64
    dropout: DropoutRate = 0.7
    classifier_dropout_2: DropoutRate = 0.7
    ccm_dropout: DropoutRate = 0.5
    attention_dropout: DropoutRate = 0.5
    attention_logit_dropout: bool = True
    variant: Literal["thumos14", "activitynet12"] = "thumos14"
    pool_seqlen: PositiveInt = 60
    pool_t: PositiveInt = 5
    fusion: Literal["ccm", "concat", "add", "se"] = "ccm"
    main_descriptor: Literal["global", "local"] = "global"
    aux_descriptor: Literal["global", "local"] = "local"
    se_hidden: PositiveInt = 64
    include_feat_encoder: bool = False
    seed_compatible_init: bool = True


# --------------------------------------------------------------------------------------------
# loss (losses.py: LossConfig; n_similar is training.n_similar, the sampler's)


class LossWeightsSchema(_Group):
    mil_raw: NonNegFloat = 1.0
    mil_supp: NonNegFloat = 1.0
    co_activity: NonNegFloat = 1.0
    mutual: NonNegFloat = 1.0
    norm: NonNegFloat = 0.8
    opposite: NonNegFloat = 0.8


class LossSchema(_Group):
    topk_divisor: PositiveInt = 7
    mutual_metric: Literal["mse", "mae", "kl", "js"] = "mse"
    weights: LossWeightsSchema = LossWeightsSchema()
    mutual_stop_grad: bool = True
    co_activity_margin: NonNegFloat = 0.5
    suppress_min_shift: bool = True
    target_eps: Annotated[float, Field(gt=0)] = 1e-4
    all_attentions: bool = True
    detach_background: bool = False


# --------------------------------------------------------------------------------------------
# training (training.py: TrainConfig, plus the node's own keys)


class TrainingSchema(_Group):
    lr: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: NonNegFloat = 1e-3
    batch_size: PositiveInt = 10
    n_similar: NonNegInt = 3
    max_seqlen: PositiveInt = 500
    max_iter: PositiveInt = 2000
    interval: PositiveInt = 500
    seed: NonNegInt = 3552
    device: Device = "auto"
    bf16: bool = False
    selection: Literal["last", "heldout", "oracle_test"] = "last"
    resume: bool = False
    checkpoint_dir: str = "data/06_models/checkpoints"
    log_every: PositiveInt = 10
    progress: bool = True
    cpu_threads: PositiveInt | None = 1
    features_on_device: bool | None = None
    # host memory the train features may take before batches are read from the store; None: no limit
    feature_memory_gb: Annotated[float, Field(gt=0)] | None = None
    metrics_every: NonNegInt = 0
    deterministic: bool = True
    sampling: Literal["random", "uniform"] = "random"
    closed_upper: bool = True
    truncate_to_valid_length: bool = True
    score_final_iteration: bool = False
    fused_adam: bool = True


# --------------------------------------------------------------------------------------------
# inference, proposals (localization.py: ProposalParams), evaluation


class InferenceSchema(_Group):
    device: Device = "auto"
    batching: Literal["padded", "equal_length", "none"] = "padded"
    bf16: bool = False
    cpu_threads: PositiveInt | None = 1


def _default_attention_thresholds() -> list[float]:
    # np.linspace(0.1, 0.9, 10) to the last bit (start + i * step, the end exact), without
    # NumPy: the same values as ProposalParams' default and conf/base.
    start, stop, num = 0.1, 0.9, 10
    step = (stop - start) / (num - 1)
    return [start + i * step for i in range(num - 1)] + [stop]


class ProposalsSchema(_Group):
    class_threshold: Probability = 0.2
    attention_thresholds: list[Probability] = Field(
        default_factory=_default_attention_thresholds, min_length=1
    )
    topk_divisor: PositiveInt = 10
    oic_margin: NonNegFloat = 0.25
    oic_weight: float = 0.2
    soft_nms_sigma: Annotated[float, Field(gt=0)] = 0.3
    skip_lone_index0: bool = True
    ambiguous_filter: bool = True


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


class GeneratorSchema(_Group):
    feature_dim: Annotated[int, Field(ge=2)] = 32
    seed: NonNegInt = 0
    subset: list[str] | str | None = None
    signal_strength: float = 1.5
    signal_channels: PositiveInt | None = None
    instance_amplitude_std: NonNegFloat = 0.25
    instance_jitter_std: NonNegFloat = 0.3
    ramp_snippets: NonNegFloat = 2.0
    noise_std: NonNegFloat = 1.0
    background_std: NonNegFloat = 0.5
    context_strength: float = 0.4
    drift_std: NonNegFloat = 0.5
    drift_timescale: Annotated[float, Field(gt=0)] = 30.0
    n_irrelevant: NonNegInt | None = None
    irrelevant_std: NonNegFloat = 1.5
    irrelevant_timescale: Annotated[float, Field(gt=0)] = 4.0


class SyntheticDataSchema(_Group):
    dataset_name: str = "Thumos14reduced"
    generator: GeneratorSchema = GeneratorSchema()


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
        if t.interval > t.max_iter:
            out.append(f"training.interval={t.interval}: must be <= training.max_iter={t.max_iter}")
        elif t.selection != "last" and t.interval >= t.max_iter and not t.score_final_iteration:
            out.append(
                f"training.interval={t.interval}: must be < training.max_iter={t.max_iter} for "
                f"training.selection={t.selection!r} (scoring happens after iterations "
                f"interval, 2*interval, ... below max_iter)"
            )
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
        if t is not None and e.test_curve_every > t.max_iter:
            out.append(
                f"evaluation.test_curve_every={e.test_curve_every}: must be <= "
                f"training.max_iter={t.max_iter} (0 = off)"
            )
    f, m = p.get("feature_ingestion"), p.get("model")
    if f is not None and m is not None and f.feature_dim != m.feature_dim:
        out.append(
            f"model.feature_dim={m.feature_dim}: must equal feature_ingestion.feature_dim="
            f"{f.feature_dim} (channels per modality of the ingested features)"
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
