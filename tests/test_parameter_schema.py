"""The parameter schema: one-line errors before anything runs, defaults printed in conf/base,
environments that only override, and groups derived from the maths-side dataclasses."""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from kedro.config import OmegaConfigLoader
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro_helpers import copy_project, run_command, tiny_params

from co2net_pipeline.kedro_glue.parameter_hook import ConfigurationError
from co2net_pipeline.params.schema import (
    GROUPS,
    ParameterError,
    parse_config,
    parse_group,
    validate_parameters,
)

ROOT = Path(__file__).resolve().parents[1]
ENVS = ("thumos14", "activitynet12")


def _params(env: str | None = None) -> dict:
    from co2net_pipeline import settings

    loader = OmegaConfigLoader(str(ROOT / "conf"), env=env, **settings.CONFIG_LOADER_ARGS)
    return copy.deepcopy(dict(loader["parameters"]))


def _with(params: dict, dotted: str, value) -> dict:
    out = copy.deepcopy(params)
    *path, last = dotted.split(".")
    node = out
    for key in path:
        node = node.setdefault(key, {})
    node[last] = value
    return out


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        ("training.lr", -1, "training.lr=-1: must be > 0"),
        ("training.max_itr", 10, "training.max_itr: unknown parameter (did you mean max_iter?)"),
        (
            "training.selection",
            "foo",
            "training.selection='foo': must be one of 'last', 'heldout' or 'oracle_test'",
        ),
        ("training.max_iter", 0, "training.max_iter=0: must be >= 1"),
        (
            "proposals.class_treshold",
            0.1,
            "proposals.class_treshold: unknown parameter (did you mean class_threshold?)",
        ),
        (
            "training.n_similar",
            6,
            "training.n_similar=6: must be <= training.batch_size / 2 "
            "(batch_size=10 holds 5 class-sharing pairs)",
        ),
        (
            "training.score_final_iteration",
            "yes",
            "training.score_final_iteration='yes': must be true or false",
        ),
        (
            "training.selection",
            "heldout",
            "training.selection='heldout': needs snippet_sampling.heldout_fraction > 0 (it is 0)",
        ),
        ("training.lr", "1e-3", "training.lr='1e-3': must be a number"),
        ("proposals.oic_weight", float("nan"), "proposals.oic_weight=nan: must be a finite number"),
        ("training.device", "gpu", "training.device='gpu': must be auto, cpu, cuda"),
        ("evaluation.tiou", [0.7, 0.1], "evaluation.tiou=[0.7, 0.1]: must be strictly increasing"),
        ("evaluation.tiou", [], "evaluation.tiou=[]: must not be empty"),
        ("evaluation.tiou", [0.1, 1.5], "evaluation.tiou[1]=1.5: must be < 1"),
        ("evaluation.test_curve_every", -1, "evaluation.test_curve_every=-1: must be >= 0"),
        ("snippet_sampling.rng", "numpy", "snippet_sampling.rng='numpy': must be one of"),
        ("loss.weights.mutal", 1.0, "loss.weights.mutal: unknown parameter (did you mean mutual?)"),
        ("loss.n_similar", 3, "loss.n_similar: unknown parameter"),
        (
            "feature_ingestion.validation.min_snipets",
            1,
            "feature_ingestion.validation.min_snipets: unknown parameter (did you mean min_snippets?)",
        ),
        (
            "model.feature_dim",
            16,
            "model.feature_dim=16: must equal feature_ingestion.feature_dim=32",
        ),
        (
            "studies.ablation_selection",
            "fulll",
            "studies.ablation_selection='fulll': not in studies.ablations (did you mean full?)",
        ),
        (
            "studies.ablations.fusion_foo",
            {"model": {"fusion": "foo"}},
            "studies.ablations.fusion_foo: model.fusion='foo': must be one of",
        ),
        ("trainig.lr", 1.0, "trainig: unknown parameter group (did you mean training?)"),
        # the raw inputs moved from the parameters to the catalog's raw layer
        (
            "feature_ingestion.features_path",
            "data/01_raw/thumos14",
            "feature_ingestion.features_path: moved to raw_data.features (conf/base/globals.yml",
        ),
        (
            "feature_ingestion.format",
            "hdf5",
            "feature_ingestion.format: moved to the raw_features dataset's type",
        ),
        # one key for the ActivityNet pooling kernel, as in the original
        ("model.pool_seqlen", 80, "model.pool_seqlen: moved to training.max_seqlen"),
        ("raw_data.feature", "/x", "raw_data.feature: unknown parameter (did you mean features?)"),
        ("raw_data.features", 3, "raw_data.features=3: must be a string"),
    ],
)
def test_a_bad_parameter_is_one_line_naming_key_value_and_rule(dotted, value, message):
    with pytest.raises(ParameterError) as info:
        validate_parameters(_with(_params(), dotted, value))
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text and len(text) < 400


def test_every_problem_is_reported_at_once():
    params = _with(_with(_params(), "training.lr", 0), "proposals.oic_margin", -1)
    with pytest.raises(ParameterError, match=r"training.lr=0: must be > 0; proposals.oic_margin"):
        validate_parameters(params)


@pytest.mark.parametrize("env", [None, *ENVS])
def test_shipped_configurations_are_valid(env):
    validate_parameters(_params(env))


def _dataclass_defaults() -> dict[str, dict]:
    """Each dataclass-backed group's defaults as its dataclass declares them (no pydantic),
    in the parameters' layout: fields that come from elsewhere dropped, loss weights nested."""
    from co2net_pipeline.data.synthetic import SyntheticParams
    from co2net_pipeline.data.validation import ValidationParams
    from co2net_pipeline.method.inference import InferenceConfig
    from co2net_pipeline.method.losses import TERMS, LossConfig
    from co2net_pipeline.method.model import ModelConfig
    from co2net_pipeline.method.proposals import ProposalParams
    from co2net_pipeline.method.training import TrainConfig

    def defaults(cls, drop=()):
        return {k: v for k, v in dataclasses.asdict(cls()).items() if k not in drop}

    loss = defaults(LossConfig, ["n_similar"])
    loss["weights"] = {term: loss.pop(term) for term in TERMS}
    return {
        "model": defaults(ModelConfig, ["n_classes", "max_seqlen"]),
        "loss": loss,
        "training": defaults(TrainConfig),
        "inference": defaults(InferenceConfig),
        "proposals": defaults(ProposalParams),
        "feature_ingestion.validation": defaults(ValidationParams, ["feature_dim"]),
        "synthetic_data.generator": defaults(SyntheticParams),
    }


def _base_groups() -> dict[str, dict]:
    groups: dict[str, dict] = {}
    for path in sorted((ROOT / "conf/base").glob("parameters_*.yml")):
        groups.update(yaml.safe_load(path.read_text()) or {})
    return groups


def test_conf_base_prints_every_key_with_the_schema_default():
    """conf/base/parameters_*.yml holds every key of each group with its default, so a user
    reads every knob there and the default is defined once (ablation entries excepted)."""
    for group, values in _base_groups().items():
        defaults = parse_group(group, {}).model_dump()
        if group == "studies":
            values = {k: v for k, v in values.items() if k != "ablations"}
            defaults.pop("ablations")
        assert values == defaults, f"{group}: conf/base {values} != schema {defaults}"


def test_conf_base_values_are_the_dataclass_defaults():
    """The maths-side dataclasses are the single list of fields and defaults: conf/base prints
    exactly their defaults (plus the training node's own keys), so the two cannot drift."""
    base = _base_groups()
    for dotted, defaults in _dataclass_defaults().items():
        group, _, sub = dotted.partition(".")
        values = dict(base[group][sub] if sub else base[group])
        if group == "training":
            for key in ("checkpoint_dir", "log_every", "progress"):
                values.pop(key)
        assert values.keys() == defaults.keys(), f"{dotted}: keys differ"
        for key, value in values.items():
            expected = defaults[key]
            assert value == expected, f"{dotted}.{key}: yml {value!r}, dataclass {expected!r}"


def test_parse_config_is_one_parse_to_the_dataclass():
    from co2net_pipeline.method.losses import LossConfig
    from co2net_pipeline.method.model import ModelConfig
    from co2net_pipeline.method.training import TrainConfig

    base = _base_groups()
    training = parse_group("training", base["training"])
    assert training.config() == TrainConfig() and training.checkpoint_dir.endswith("checkpoints")
    loss = parse_config("loss", {"weights": {"mutual": 0.0}}, n_similar=2)
    assert loss == LossConfig(mutual=0.0, n_similar=2)
    assert parse_config("model", base["model"], n_classes=5) == ModelConfig(n_classes=5)
    with pytest.raises(ParameterError, match=r"^model.fusion='x': must be one of"):
        parse_config("model", {"fusion": "x"})
    with pytest.raises(TypeError, match="configures no dataclass"):
        parse_config("evaluation", {})


@pytest.mark.parametrize(
    ("env", "edits"),
    [
        (None, {"training": {"max_iter": 100}}),
        ("thumos14", {"training": {"max_iter": 100}}),
        ("activitynet12", {"training": {"max_iter": 150}}),
        (None, {"training": {"max_iter": 10}, "evaluation": {"test_curve_every": 200}}),
    ],
)
def test_quick_runs_shorter_than_interval_and_test_curve_are_accepted(env, edits):
    """Checkpoints and test points less often than the run is long are legitimate: the final
    iteration is saved (and scored) anyway."""
    params = _params(env)
    for group, values in edits.items():
        params[group].update(values)
    validate_parameters(params)


def test_a_selection_without_a_scoring_point_is_still_refused():
    params = _with(
        _with(_params("thumos14"), "training.max_iter", 100), "training.selection", "oracle_test"
    )
    with pytest.raises(ParameterError) as info:
        validate_parameters(params)
    assert str(info.value) == (
        "training.interval=200: must be < training.max_iter=100 for training.selection="
        "'oracle_test' (scoring happens after iterations interval, 2*interval, ... below max_iter)"
    )
    validate_parameters(_with(params, "training.score_final_iteration", True))


@pytest.mark.parametrize("env", ENVS)
def test_environments_override_and_never_restate(env):
    base = _params()
    for path in (ROOT / "conf" / env).glob("parameters*.yml"):
        for group, values in (yaml.safe_load(path.read_text()) or {}).items():
            for key, value in values.items():
                assert base[group].get(key) != value, f"{path}: {group}.{key} restates the default"


def test_schema_groups_are_derived_from_the_dataclasses():
    """Same keys as the dataclass fields (none repeated by hand), and the dataclass defaults."""
    from co2net_pipeline.method.training import TrainConfig

    for dotted, defaults in _dataclass_defaults().items():
        group, _, sub = dotted.partition(".")
        schema = GROUPS[group]
        if sub:
            schema = schema.model_fields[sub].annotation
        keys = set(schema.model_fields)
        if group == "training":
            keys -= {"checkpoint_dir", "log_every", "progress"}
        assert keys == set(defaults), dotted
    assert GROUPS["training"].source is TrainConfig


# --------------------------------------------------------------------------------------------
# Through Kedro: the check runs before the first node, nothing is written


@pytest.fixture
def project(tmp_path, monkeypatch):
    project = copy_project(tmp_path)
    monkeypatch.chdir(project)
    bootstrap_project(project)
    return project


def _written(project: Path) -> list[str]:
    data = project / "data"
    return sorted(str(p.relative_to(project)) for p in data.rglob("*")) if data.exists() else []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"proposals": {"class_treshold": 0.1}},
            "proposals.class_treshold: unknown parameter (did you mean class_threshold?)",
        ),
        ({"training": {"lr": -1}}, "training.lr=-1: must be > 0"),
    ],
)
def test_kedro_run_fails_before_any_dataset_is_touched(project, extra, message, monkeypatch):
    monkeypatch.delenv("CO2NET_DEBUG", raising=False)
    with KedroSession.create(project_path=project, runtime_params=tiny_params(extra)) as session:
        with pytest.raises(ConfigurationError) as info:
            session.run(pipeline_names=["train_eval"])
    assert str(info.value.message) == message
    assert isinstance(info.value, ValueError) and info.value.exit_code == 2
    assert _written(project) == []


def test_only_the_selected_pipelines_groups_are_checked(project):
    """A broken training key does not stop a pipeline that never reads it."""
    pipelines = pytest.importorskip("co2net_pipeline.kedro_glue.parameter_hook")
    from co2net_pipeline.pipeline_registry import register_pipelines

    registered = register_pipelines()
    assert pipelines.pipeline_groups(registered["synthetic_data"]) == ["synthetic_data"]
    assert {"training", "proposals", "evaluation"} <= set(
        pipelines.pipeline_groups(registered["train_eval"])
    )
    # training_ml: its logged model's inference part reads inference and proposals
    ml = registered["training_ml"]
    assert {"inference", "proposals"} <= set(pipelines.pipeline_groups(ml.training, [ml]))


def test_dataclass_configs_suggest_the_closest_key():
    from co2net_pipeline.method.proposals import ProposalParams

    with pytest.raises(ValueError, match=r"did you mean class_treshold -> class_threshold\?"):
        ProposalParams.from_dict({"class_treshold": 0.1})


def test_unknown_environment_is_named(project, monkeypatch):
    monkeypatch.delenv("CO2NET_DEBUG", raising=False)
    with pytest.raises(ConfigurationError, match=r"Kedro environment 'nosuchenv' not found: "):
        with KedroSession.create(project_path=project, env="nosuchenv") as session:
            session.run(pipeline_names=["synthetic_data"])
    assert _written(project) == []


def test_debug_mode_raises_the_plain_error(project, monkeypatch):
    monkeypatch.setenv("CO2NET_DEBUG", "1")
    with KedroSession.create(
        project_path=project, runtime_params=tiny_params({"training": {"max_iter": 0}})
    ) as session:
        with pytest.raises(ParameterError, match="training.max_iter=0: must be >= 1") as info:
            session.run(pipeline_names=["train_eval"])
    assert not isinstance(info.value, ConfigurationError)
    assert os.environ["CO2NET_DEBUG"] == "1"


# --------------------------------------------------------------------------------------------
# Property: any parameter set is accepted or refused in one line, never with a traceback


_KEYS = sorted({k for schema in GROUPS.values() for k in schema.model_fields} | {"lr ", "max_itr"})
_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["auto", "cpu", "cuda:1", "last", "oracle_test", "0.1:0.7", "1 2 3"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_KEYS), inner),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from([None, *ENVS]),
    edits=st.lists(
        st.tuples(
            st.sampled_from([*GROUPS, "trainig", "evaluation"]),
            st.sampled_from(_KEYS),
            _VALUES,
        ),
        max_size=4,
    ),
)
def test_any_parameter_set_is_accepted_or_refused_in_one_line(base, edits):
    params = _BASES[base]
    for group, key, value in edits:
        params = _with(params, f"{group}.{key}", value)
    try:
        validate_parameters(params)
    except ParameterError as exc:
        text = str(exc)
        assert text and "\n" not in text and "Traceback" not in text


_BASES = {env: _params(env) for env in (None, *ENVS)}


def test_an_output_location_that_cannot_be_written_fails_before_the_run(project, monkeypatch):
    monkeypatch.delenv("CO2NET_DEBUG", raising=False)
    (project / "data").mkdir()
    (project / "data/07_model_output").write_text("a file where a folder must be")
    with KedroSession.create(project_path=project, runtime_params=tiny_params()) as session:
        with pytest.raises(ConfigurationError) as info:
            session.run(pipeline_names=["train_eval"])
    assert str(info.value.message).startswith("dataset ")
    assert str(info.value.message).endswith(f"{project / 'data/07_model_output'} is a file")
    assert _written(project) == ["data/07_model_output"]


def test_a_checkpoint_folder_under_a_file_fails_before_the_run(project, monkeypatch):
    monkeypatch.delenv("CO2NET_DEBUG", raising=False)
    (project / "blocker").write_text("x")
    extra = {"training": {"checkpoint_dir": "blocker/ckpt"}}
    with KedroSession.create(project_path=project, runtime_params=tiny_params(extra)) as session:
        with pytest.raises(ConfigurationError) as info:
            session.run(pipeline_names=["train_eval"])
    assert str(info.value.message) == (
        f"training.checkpoint_dir=blocker/ckpt: cannot write {project / 'blocker/ckpt/last.pt'}: "
        f"{project / 'blocker'} is a file"
    )
    assert _written(project) == []


def test_missing_raw_features_fail_before_the_run_naming_the_dataset(project, monkeypatch):
    monkeypatch.delenv("CO2NET_DEBUG", raising=False)
    params = tiny_params({"raw_data": {"features": "nowhere/thumos14"}})
    with KedroSession.create(project_path=project, runtime_params=params) as session:
        with pytest.raises(ConfigurationError) as info:
            session.run(pipeline_names=["train_eval"])
    assert str(info.value.message) == (
        f"dataset 'raw_features': {project / 'nowhere/thumos14'} not found (set raw_data.features in "
        "conf/<env>/globals.yml, or kedro run --params raw_data.features=PATH)"
    )
    assert _written(project) == []


def test_kedro_run_command_prints_one_line_and_exits_2(project):
    done = run_command(
        project, "kedro", "run", "--pipeline=train_eval", "--params", "training.max_itr=10"
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-2000:]
    assert "Error: training.max_itr: unknown parameter (did you mean max_iter?)\n" in output
    assert "Traceback" not in output and "╭" not in output
    assert _written(project) == []


def test_kedro_run_quick_thumos14_run_passes_the_parameter_check(project):
    """`kedro run --env thumos14 --params training.max_iter=100` (interval and test_curve_every
    200 there) passes the parameter check; in this copy without features it stops at the next
    check, the missing raw features."""
    done = run_command(
        project,
        "kedro",
        *["run", "--pipeline=train_eval", "--env=thumos14", "--params", "training.max_iter=100"],
    )
    output = done.stdout + done.stderr
    assert "training.interval" not in output and "test_curve_every" not in output, output[-2000:]
    assert "Error: dataset 'raw_features': " in output, output[-2000:]
    assert _written(project) == []
