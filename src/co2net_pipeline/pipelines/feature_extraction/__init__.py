"""Videos → W-TALC-format two-stream I3D features (README "Your own videos")."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
