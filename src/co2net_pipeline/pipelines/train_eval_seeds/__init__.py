"""train_eval_seeds: the train_eval chain for several seeds, mean ± std of every mAP."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
