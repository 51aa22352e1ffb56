"""Environment switches read as booleans (`CO2NET_DEBUG=1`, `=true`, `=off`, ...)."""

from __future__ import annotations

import os

__all__ = ["DEBUG_VARIABLE", "debug_enabled", "env_flag"]

DEBUG_VARIABLE = "CO2NET_DEBUG"
_FALSE = frozenset({"", "0", "false", "no", "off", "n", "f", "none"})


def env_flag(name: str, default: bool = False) -> bool:
    """The variable `name` as a boolean, case-insensitive: 1/true/yes/on are true, 0/false/no/
    off (and empty) are false; unset gives `default`. Any other text counts as true: a user
    who sets the variable to something unexpected most likely wants the switch on."""
    value = os.environ.get(name)
    if value is None:
        return default
    text = value.strip().lower()
    return text not in _FALSE


def debug_enabled() -> bool:
    """Whether `CO2NET_DEBUG` asks for full tracebacks instead of one-line errors."""
    return env_flag(DEBUG_VARIABLE)
