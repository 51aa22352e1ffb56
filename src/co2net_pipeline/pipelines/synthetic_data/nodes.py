"""The embedded SYNTHETIC THUMOS14-shaped dataset, written in the reference (W-TALC) format."""

from __future__ import annotations

from co2net_pipeline.data.annotations import load_wtalc_annotations, shipped_annotations_dir
from co2net_pipeline.data.synthetic import (
    SyntheticParams,
    generate_features,
    select_subset,
    write_wtalc_dataset,
)

_SHIPPED = {"Thumos14reduced": "thumos14", "ActivityNet1.2": "activitynet12"}


def generate_synthetic_dataset(params: dict) -> dict:
    """Generate features for the real annotations and write them; returns a manifest of what was written."""
    name = params.get("dataset_name", "Thumos14reduced")
    if name not in _SHIPPED:
        raise ValueError(
            f"synthetic_data.dataset_name must be one of {sorted(_SHIPPED)}, got {name!r}"
        )
    synth = SyntheticParams.from_dict(params.get("generator"))
    source = shipped_annotations_dir(_SHIPPED[name])
    annotations, keep = select_subset(load_wtalc_annotations(source, name=name), synth.subset)
    features = generate_features(annotations, synth)
    paths = write_wtalc_dataset(
        params["output_dir"], name, features, source, keep=None if synth.subset is None else keep
    )
    return {
        "synthetic": True,
        "dataset_name": name,
        "n_videos": len(features),
        "n_snippets": int(sum(len(f) for f in features)),
        "generator": synth.to_dict(),
        "features": str(paths["features"]),
        "annotations": str(paths["annotations"]),
    }
