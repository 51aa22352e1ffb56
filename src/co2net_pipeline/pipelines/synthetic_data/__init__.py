"""synthetic_data: the embedded SYNTHETIC default feature set (real THUMOS14 annotations)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
