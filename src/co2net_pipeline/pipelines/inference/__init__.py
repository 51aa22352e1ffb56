"""Inference: whole-video forward passes over the test subset."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
