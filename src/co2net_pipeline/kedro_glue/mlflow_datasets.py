"""MLflow-bound catalog datasets that need kedro-mlflow (and so MLflow) at import; kept apart
from `datasets` so the project's other datasets import without them."""

from __future__ import annotations

import time

from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset

# MLflow's limit on metrics per `log_batch` call.
MAX_METRICS_PER_BATCH = 1000


class BatchedMetricsHistoryDataset(MlflowMetricsHistoryDataset):
    """kedro-mlflow's `MlflowMetricsHistoryDataset`, saved with `MlflowClient.log_batch` in
    chunks of `MAX_METRICS_PER_BATCH`: one store transaction per chunk instead of one per value
    (value by value, `make run`'s loss histories took 29 s to log on SQLite).

    prefix: the metric names' prefix, normally the catalog name (`training_metrics.total`);
    required: kedro-mlflow replaces a metrics dataset without one by its own, unbatched class.
    """

    def __init__(
        self, prefix: str, run_id: str | None = None, metadata: dict | None = None
    ) -> None:
        super().__init__(run_id=run_id, prefix=prefix, metadata=metadata)

    def _save(self, data: dict) -> None:
        if not self._logging_activated:
            return
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, int(step))
            for name, item in data.items()
            for key, value, step in self._build_args_list_from_metric_item(name, item)
        ]
        client, run_id = MlflowClient(), self.run_id
        for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[start : start + MAX_METRICS_PER_BATCH])
