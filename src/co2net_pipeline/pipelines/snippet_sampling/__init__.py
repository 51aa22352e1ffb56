"""Snippet sampling: train/held-out/test split and the per-iteration batch plan."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
