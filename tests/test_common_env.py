"""`CO2NET_DEBUG` and other switches are booleans: `False`, `no`, `off` turn them off."""

import pytest

from co2net_pipeline.common.env import debug_enabled, env_flag


@pytest.mark.parametrize("value", ["0", "", "false", "False", "NO", "off", " Off ", "n"])
def test_off_values_turn_debug_off(monkeypatch, value):
    monkeypatch.setenv("CO2NET_DEBUG", value)
    assert debug_enabled() is False


@pytest.mark.parametrize("value", ["1", "true", "True", "yes", "on", "ON"])
def test_on_values_turn_debug_on(monkeypatch, value):
    monkeypatch.setenv("CO2NET_DEBUG", value)
    assert debug_enabled() is True


def test_unset_gives_the_default(monkeypatch):
    monkeypatch.delenv("CO2NET_SOME_SWITCH", raising=False)
    assert env_flag("CO2NET_SOME_SWITCH") is False
    assert env_flag("CO2NET_SOME_SWITCH", default=True) is True


def test_cli_and_hooks_read_the_flag_as_a_boolean(monkeypatch):
    from co2net_pipeline import cli
    from co2net_pipeline.kedro_glue import parameter_hook

    monkeypatch.setenv("CO2NET_DEBUG", "off")
    assert cli._debug() is False and parameter_hook._debug() is False
    monkeypatch.setenv("CO2NET_DEBUG", "yes")
    assert cli._debug() is True and parameter_hook._debug() is True
