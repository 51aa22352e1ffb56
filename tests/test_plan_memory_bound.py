"""`training.max_iter` is refused, before any work, when the sampling plan would not fit."""

import copy
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from co2net_pipeline.params import schema
from co2net_pipeline.params.schema import ParameterError, plan_memory_problem, validate_parameters

ROOT = Path(__file__).resolve().parents[1]


def _params() -> dict:
    from co2net_pipeline import settings

    loader = OmegaConfigLoader(str(ROOT / "conf"), **settings.CONFIG_LOADER_ARGS)
    return copy.deepcopy(dict(loader["parameters"]))


def test_a_plan_too_big_for_the_machine_is_refused_stating_the_memory(monkeypatch):
    monkeypatch.setattr(schema, "physical_memory_bytes", lambda: 16 * 2**30)
    params = _params()
    params["training"]["max_iter"] = 10**8
    with pytest.raises(ParameterError) as info:
        validate_parameters(params, ["training"])
    text = str(info.value)
    assert text.startswith("training.max_iter=100000000: the sampling plan"), text
    assert "about 158.3 GiB of memory; this machine has 16.0 GiB" in text
    assert "\n" not in text


def test_a_plan_that_fits_is_accepted(monkeypatch):
    monkeypatch.setattr(schema, "physical_memory_bytes", lambda: 16 * 2**30)
    assert plan_memory_problem(100_000, 10) is None  # the paper's run: 0.16 GiB
    assert plan_memory_problem(10**6, 10) is None  # 1.6 GiB of 16
    assert plan_memory_problem(10**7, 10) is not None  # 15.8 GiB of 16


def test_unknown_machine_memory_does_not_refuse(monkeypatch):
    monkeypatch.setattr(schema, "physical_memory_bytes", lambda: None)
    assert plan_memory_problem(10**9, 10) is None


def test_this_machine_reports_its_memory():
    total = schema.physical_memory_bytes()
    assert total is None or total > 2**28
