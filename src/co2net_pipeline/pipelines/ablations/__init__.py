"""ablations: the paper's ablation configurations (Tables 3-6), one comparison table."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
