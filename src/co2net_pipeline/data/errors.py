"""The data layer's error type, shared by the readers (`formats`) and `validation`."""

from __future__ import annotations


class DataValidationError(ValueError):
    """Features or annotations that cannot be used; the message names file, video and problem."""
