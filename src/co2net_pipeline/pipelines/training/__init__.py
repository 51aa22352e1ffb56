"""Training: CO2-Net with the reference losses and optimiser."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
