"""Building the parameter dataclasses from Kedro parameter dictionaries."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def dataclass_from_dict(
    cls: type[T], values: Mapping[str, Any] | None, what: str = "keys", drop_none: bool = False
) -> T:
    """`cls(**values)`, refusing unknown keys so that a typo in a YAML file fails loudly.

    what: how the error names the keys ("synthetic parameter(s)", ...); drop_none: a `None`
    value keeps the field's default.
    """
    values = dict(values or {})
    if drop_none:
        values = {k: v for k, v in values.items() if v is not None}
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown {what} {unknown}; known: {sorted(known)}")
    return cls(**values)
