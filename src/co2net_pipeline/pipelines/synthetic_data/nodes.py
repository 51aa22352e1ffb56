"""The embedded SYNTHETIC THUMOS14-shaped dataset, written in the reference (W-TALC) format."""

from __future__ import annotations

from co2net_pipeline.data.synthetic import synthesize


def generate_synthetic_dataset(params: dict) -> dict:
    """Generate features for the real annotations and write them; returns a manifest of what was written."""
    return synthesize(
        params["output_dir"], params.get("dataset_name", "Thumos14reduced"), params.get("generator")
    )
