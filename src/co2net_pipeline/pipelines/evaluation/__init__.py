"""Evaluation: detection mAP per tIoU, per-class AP, plots."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
