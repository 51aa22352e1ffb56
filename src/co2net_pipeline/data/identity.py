"""What data a run read, as the tags and report fields that tell two datasets apart.

`data_source` comes from the files, not from a parameter: features with the synthetic
generator's `manifest.json` beside them are `synthetic`; anything else is the label the user
gave (`feature_ingestion.data_source`, e.g. `thumos14_i3d`), or `user` while that label still
says `synthetic`. `dataset` is the annotations' name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # light to import: `tracking` reads DATA_TAGS
    from co2net_pipeline.data.formats import FeatureSource

SYNTHETIC = "synthetic"
# The data_source of features without a manifest whose label still says synthetic.
UNLABELLED = "user"
# The tags naming a run's data, in the order `co2net compare` lists them.
DATA_TAGS = ("dataset", "data_source", "features_path", "features_format", "feature_fingerprint")


def synthetic_manifest(features_path: str | Path) -> Path | None:
    """The synthetic generator's manifest that describes `features_path` (the W-TALC file or
    its folder), or None: features from anywhere else."""
    from co2net_pipeline.data.synthetic import MANIFEST_NAME

    path = Path(features_path)
    folder = path if path.is_dir() else path.parent
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        return None
    if path.is_file():
        try:
            written = json.loads(manifest.read_text()).get("features")
        except (OSError, ValueError, AttributeError):
            return None
        if written is None or Path(written).name != path.name:
            return None  # a manifest of other features in the same folder
    return manifest


def data_source(features_path: str | Path, label: str | None = None) -> str:
    """`synthetic` when the synthetic manifest lies beside the features, else `label` (a
    `synthetic` or empty label becomes `user`)."""
    if synthetic_manifest(features_path) is not None:
        return SYNTHETIC
    return label if label and label != SYNTHETIC else UNLABELLED


def data_identity(
    source: FeatureSource, dataset: str, fingerprint: str, label: str | None = None
) -> dict[str, str]:
    """The `DATA_TAGS` of features `source` paired with the annotations of `dataset`."""
    return {
        "dataset": dataset,
        "data_source": data_source(source.path, label),
        "features_path": str(source.path),
        "features_format": source.format,
        "feature_fingerprint": fingerprint,
    }
