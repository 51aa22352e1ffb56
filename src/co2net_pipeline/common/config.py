"""Building the maths-side configuration dataclasses from plain dictionaries.

Kedro runs check every parameter against `co2net_pipeline.params.schema` before the first node; this
is the same refusal of unknown keys for Python callers that build a config directly.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def dataclass_from_dict(
    cls: type[T], values: Mapping[str, Any] | None, what: str = "keys", drop_none: bool = False
) -> T:
    """`cls(**values)`, refusing unknown keys so that a typo in a YAML file fails loudly.

    what: how the error names the keys ("synthetic parameter(s)", ...); drop_none: a `None`
    value keeps the field's default. The error suggests the closest known key (difflib).
    """
    values = dict(values or {})
    if drop_none:
        values = {k: v for k, v in values.items() if v is not None}
    known = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(values) - set(known))
    if unknown:
        hints = [
            f"{key} -> {close[0]}"
            for key in unknown
            if (close := difflib.get_close_matches(str(key), known, n=1, cutoff=0.6))
        ]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise ValueError(f"{cls.__name__}: unknown {what} {unknown}{hint}; known: {known}")
    return cls(**values)
