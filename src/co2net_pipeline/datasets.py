"""Kedro datasets for the project's own artifacts: the HDF5 stores and the trained model."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from co2net_pipeline.atomic import atomic_path


class FeatureStoreDataset(AbstractDataset):
    """The validated HDF5 feature store.

    `load()` returns a lazy `FeatureStore` (one HDF5 dataset per video, read on demand).
    `save(pending)` takes the ingestion node's `PendingFeatureStore` and streams it to a temporary
    file that replaces the old store only when complete; an unchanged input fingerprint skips the
    write.
    """

    def __init__(self, filepath: str, metadata: dict | None = None):
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self):
        from co2net_pipeline.data.store import FeatureStore

        if not Path(self._filepath).is_file():
            raise DatasetError(
                f"{self._filepath}: no feature store yet; run the feature_ingestion pipeline"
            )
        return FeatureStore(Path(self._filepath))

    def save(self, data) -> None:
        Path(self._filepath).parent.mkdir(parents=True, exist_ok=True)
        data.write(Path(self._filepath))

    def _exists(self) -> bool:
        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class ArrayStoreDataset(AbstractDataset):
    """Per-video named arrays (e.g. CAS and attention) in one HDF5 file, written atomically."""

    def __init__(self, filepath: str, metadata: dict | None = None):
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self) -> dict:
        from co2net_pipeline.data.store import read_array_store

        return read_array_store(Path(self._filepath))

    def save(self, data: dict) -> None:
        from co2net_pipeline.data.store import write_array_store

        Path(self._filepath).parent.mkdir(parents=True, exist_ok=True)
        write_array_store(Path(self._filepath), data)

    def _exists(self) -> bool:
        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class TorchModelDataset(AbstractDataset):
    """A trained model as `{"state_dict", "model_config", "classlist", ...}` in one `.pt` file.

    Loaded with `weights_only=True`: a model file cannot execute code.
    """

    def __init__(self, filepath: str, metadata: dict | None = None):
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self) -> dict:
        import torch

        return torch.load(Path(self._filepath), map_location="cpu", weights_only=True)

    def save(self, data: dict) -> None:
        import torch

        with atomic_path(Path(self._filepath)) as tmp:
            torch.save(data, tmp)

    def _exists(self) -> bool:
        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class SyntheticFeatureSetDataset(AbstractDataset):
    """The embedded SYNTHETIC W-TALC set in folder `path`: `<Name>-I3D-JOINTFeatures.npy`,
    `<Name>-Annotations/` and `manifest.json`.

    `save(pending)` takes the synthetic_data node's `PendingSyntheticSet` and streams it video by
    video (peak memory about one video); the manifest is written last. `load()` returns the
    manifest (what was written: dataset, counts, generator parameters, file paths).
    """

    def __init__(self, path: str, metadata: dict | None = None):
        self._path = PurePosixPath(path)
        self.metadata = metadata

    def load(self) -> dict:
        import json

        from co2net_pipeline.data.synthetic import MANIFEST_NAME

        manifest = Path(self._path) / MANIFEST_NAME
        if not manifest.is_file():
            raise DatasetError(f"{manifest}: no synthetic set yet; run the synthetic_data pipeline")
        return json.loads(manifest.read_text())

    def save(self, data) -> None:
        data.write(Path(self._path))

    def _exists(self) -> bool:
        from co2net_pipeline.data.synthetic import MANIFEST_NAME

        return (Path(self._path) / MANIFEST_NAME).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
