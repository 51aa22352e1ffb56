"""Kedro datasets for the project's own artifacts: the HDF5 stores and the trained model."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

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


class RawFeatures(NamedTuple):
    """What a raw features dataset loads: the lazy per-video source and its annotations."""

    source: Any  # data.formats.FeatureSource: nothing read beyond headers until iterated
    annotations: Any  # data.annotations.Annotations


class _RawFeaturesDataset(AbstractDataset):
    """Read-only raw features of one input format, with their annotations (raw layer).

    filepath: the features (file or folder); annotations_path: a W-TALC folder, ActivityNet
    JSON or ground-truth CSV (wtalc: defaults to `<Name>-Annotations/` beside the file, else
    the shipped annotations); dataset_name: e.g. Thumos14reduced. `load()` opens the source
    lazily (`data.formats.open_feature_source`); the features are streamed by whoever iterates.
    """

    format = ""

    def __init__(
        self,
        filepath: str,
        annotations_path: str | None = None,
        dataset_name: str | None = None,
        metadata: dict | None = None,
    ):
        self._filepath = PurePosixPath(filepath)
        self._annotations_path = annotations_path
        self._dataset_name = dataset_name
        self.metadata = metadata

    def load(self) -> RawFeatures:
        from co2net_pipeline.data.formats import open_feature_source

        source, annotations = open_feature_source(
            Path(self._filepath), self.format, self._annotations_path, self._dataset_name
        )
        return RawFeatures(source, annotations)

    def save(self, data) -> None:
        raise DatasetError(f"{self._filepath}: raw features are read-only inputs")

    def _exists(self) -> bool:
        return Path(self._filepath).exists()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "format": self.format,
            "annotations_path": self._annotations_path,
            "dataset_name": self._dataset_name,
        }


class WtalcFeaturesDataset(_RawFeaturesDataset):
    """W-TALC `<Name>-I3D-JOINTFeatures.npy` (or its folder), in any layout W-TALC ships."""

    format = "wtalc"


class NpyFolderFeaturesDataset(_RawFeaturesDataset):
    """A folder of `<video_id>.npy` (T, 2D), or `rgb/` + `flow/` folders of (T, D) each."""

    format = "npy-folder"


class Hdf5FeaturesDataset(_RawFeaturesDataset):
    """One HDF5 file: a (T, 2D) dataset, or an `rgb` + `flow` group, per video."""

    format = "hdf5"


class AnnotationsDataset(AbstractDataset):
    """Read-only annotations: a W-TALC folder, an ActivityNet-style `.json` or a `.csv`."""

    def __init__(
        self, filepath: str, dataset_name: str | None = None, metadata: dict | None = None
    ):
        self._filepath = PurePosixPath(filepath)
        self._dataset_name = dataset_name
        self.metadata = metadata

    def load(self):
        from co2net_pipeline.data.formats import load_annotations

        return load_annotations(Path(self._filepath), self._dataset_name)

    def save(self, data) -> None:
        raise DatasetError(f"{self._filepath}: raw annotations are read-only inputs")

    def _exists(self) -> bool:
        return Path(self._filepath).exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "dataset_name": self._dataset_name}
