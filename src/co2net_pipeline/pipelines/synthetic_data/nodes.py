"""The embedded SYNTHETIC THUMOS14-shaped dataset, written in the reference (W-TALC) format."""

from __future__ import annotations

from co2net_pipeline.data.synthetic import PendingSyntheticSet, pending_synthetic_set
from co2net_pipeline.params.schema import parse_group


def generate_synthetic_dataset(params: dict) -> PendingSyntheticSet:
    """The synthetic set for the real annotations, to be streamed to disk by the catalog's
    `synthetic_features` dataset (one video in memory at a time)."""
    return pending_synthetic_set(
        parse_group("synthetic_data", params).dataset_name, params.get("generator")
    )
