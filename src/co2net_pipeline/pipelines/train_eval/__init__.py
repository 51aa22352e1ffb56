"""train_eval: the whole method end to end (the default pipeline)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
