"""The code MLflow stores with the logged detector model ("models from code", MLflow 3): it
names the pyfunc class; weights and parameters come from the model's artifacts and config."""

import mlflow

from co2net_pipeline.tracking.detector import Detector

mlflow.models.set_model(Detector())
