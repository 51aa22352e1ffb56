"""Kedro datasets for the project's own artifacts: the HDF5 stores, the trained model, run tags.

The feature store, the array stores and the model are replaced atomically; during a `kedro run`
their previous file is kept until the run ends and put back if it fails
(`common.output_journal`). The synthetic set (a folder of files) is not journaled.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from co2net_pipeline.common.atomic import atomic_path
from co2net_pipeline.common.output_journal import keep_previous

logger = logging.getLogger(__name__)


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
        keep_previous(Path(self._filepath))
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
        keep_previous(Path(self._filepath))
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

        keep_previous(Path(self._filepath))
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


class RawFeaturesDataset(AbstractDataset):
    """Read-only raw features of one input format (kedro-viz layer `raw`).

    filepath: the features (file or folder); dataset_name: e.g. Thumos14reduced (W-TALC: picks
    `<Name>-I3D-JOINTFeatures.npy` in a folder). `load()` returns a lazy
    `data.formats.FeatureSource` (nothing read beyond headers and file lists); the ingestion
    node pairs it with `raw_annotations` and streams it video by video.
    """

    format = ""

    def __init__(
        self, filepath: str, dataset_name: str | None = None, metadata: dict | None = None
    ):
        if not self.format:
            raise DatasetError(
                "RawFeaturesDataset is the base class: use WtalcFeaturesDataset, "
                "NpyFolderFeaturesDataset or Hdf5FeaturesDataset"
            )
        self._filepath = PurePosixPath(filepath)
        self._dataset_name = dataset_name
        self.metadata = metadata

    def load(self):
        from co2net_pipeline.data.formats import open_features

        return open_features(Path(self._filepath), self.format, self._dataset_name)

    def save(self, data) -> None:
        raise DatasetError(f"{self._filepath}: raw features are read-only inputs")

    @property
    def location(self) -> str:
        return str(self._filepath)

    def _exists(self) -> bool:
        return Path(self._filepath).exists()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "format": self.format,
            "dataset_name": self._dataset_name,
        }


class WtalcFeaturesDataset(RawFeaturesDataset):
    """W-TALC `<Name>-I3D-JOINTFeatures.npy` (or its folder), in any layout W-TALC ships."""

    format = "wtalc"


class NpyFolderFeaturesDataset(RawFeaturesDataset):
    """A folder of `<video_id>.npy` (T, 2D), or `rgb/` + `flow/` folders of (T, D) each."""

    format = "npy-folder"


class Hdf5FeaturesDataset(RawFeaturesDataset):
    """One HDF5 file: a (T, 2D) dataset, or an `rgb` + `flow` group, per video."""

    format = "hdf5"


class AnnotationsDataset(AbstractDataset):
    """Read-only annotations (kedro-viz layer `raw`): a W-TALC folder, an ActivityNet-style
    `.json` or a `.csv`; `load()` returns a `data.formats.AnnotationInput`.

    filepath: the annotations; null with W-TALC features means `<Name>-Annotations/` beside
    them, else the shipped THUMOS14 / ActivityNet1.2 ones; null otherwise means the shipped
    annotations of `dataset_name`. wtalc_features: the W-TALC feature file or folder these
    annotations pair with by position (leave it out for other formats), as a path or as
    `{filepath: ...}` (the form Kedro makes absolute against the project, as it does `filepath`).
    """

    def __init__(
        self,
        filepath: str | None = None,
        dataset_name: str | None = None,
        wtalc_features: str | dict | None = None,
        metadata: dict | None = None,
    ):
        if isinstance(wtalc_features, dict):
            wtalc_features = wtalc_features.get("filepath")
        self._filepath = None if filepath is None else PurePosixPath(filepath)
        self._dataset_name = dataset_name
        self._wtalc_features = None if wtalc_features is None else PurePosixPath(wtalc_features)
        self.metadata = metadata

    def load(self):
        from co2net_pipeline.data.formats import resolve_annotations

        return resolve_annotations(
            None if self._filepath is None else Path(self._filepath),
            self._dataset_name,
            wtalc_features=None if self._wtalc_features is None else Path(self._wtalc_features),
        )

    def save(self, data) -> None:
        raise DatasetError(f"{self._filepath}: raw annotations are read-only inputs")

    @property
    def location(self) -> str | None:
        """The annotations, else the W-TALC features they are looked up beside (or None)."""
        where = self._filepath or self._wtalc_features
        return None if where is None else str(where)

    def _exists(self) -> bool:
        return self.location is None or Path(self.location).exists()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": None if self._filepath is None else str(self._filepath),
            "dataset_name": self._dataset_name,
            "wtalc_features": None if self._wtalc_features is None else str(self._wtalc_features),
        }


class MlflowTagsDataset(AbstractDataset):
    """Run tags a node returns (`{name: value}`), set on the active MLflow run when saved, so
    no node calls MLflow itself.

    Values are stored as strings. Without an active run (a runner used without kedro-mlflow's
    hooks, or a pipeline in mlflow.yml's `disable_tracking`) nothing is sent to MLflow and one
    INFO line lists the tags not recorded. `load()` returns the tags saved last in this process.
    """

    def __init__(self, metadata: dict | None = None):
        self._tags: dict[str, str] | None = None
        self.metadata = metadata

    def load(self) -> dict[str, str]:
        if self._tags is None:
            raise DatasetError("MlflowTagsDataset: no tags saved in this run yet")
        return dict(self._tags)

    def save(self, data: dict[str, Any]) -> None:
        import mlflow

        if not isinstance(data, dict):
            raise DatasetError(f"MlflowTagsDataset: expected a dict of tags, got {type(data)}")
        self._tags = {str(name): str(value) for name, value in data.items()}
        if mlflow.active_run() is not None:
            mlflow.set_tags(self._tags)
        else:
            logger.info(
                "no active MLflow run: tags not recorded: %s",
                ", ".join(f"{k}={v}" for k, v in self._tags.items()),
            )

    def _exists(self) -> bool:
        return self._tags is not None

    def _describe(self) -> dict[str, Any]:
        return {"tags": sorted(self._tags or {})}


def raw_datasets(catalog, inputs) -> dict[str, AbstractDataset]:
    """The raw-layer datasets among a pipeline's `inputs`, by name: the features first (their
    path is the one users set), then the annotations."""
    found = {n: catalog.get(n) for n in sorted(inputs) if not n.startswith("params:")}
    ordered = [n for n, d in found.items() if isinstance(d, RawFeaturesDataset)]
    ordered += [n for n, d in found.items() if isinstance(d, AnnotationsDataset)]
    return {n: found[n] for n in ordered}
