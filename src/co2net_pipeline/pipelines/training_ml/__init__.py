"""training_ml: the training chain, logged as an MLflow pyfunc model (features → detections)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
