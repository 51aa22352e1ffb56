"""Proposals: thresholds, connected runs, OIC scoring, soft-NMS, ambiguous filtering."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
