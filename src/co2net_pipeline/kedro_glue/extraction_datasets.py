"""Kedro datasets of the feature_extraction pipeline: the raw videos and per-video feature folders."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, DatasetError


class VideoFolderDataset(AbstractDataset):
    """Read-only folder of video files (kedro-viz layer `raw`).

    path: the folder; extensions: which files are videos (default mp4, avi, mkv, webm; case
    does not matter). `load()` returns the sorted list of video file paths (nothing opened).
    """

    def __init__(
        self, path: str, extensions: list[str] | None = None, metadata: dict | None = None
    ):
        from co2net_pipeline.extraction.video import VIDEO_EXTENSIONS

        self._path = PurePosixPath(path)
        self._extensions = tuple(extensions or VIDEO_EXTENSIONS)
        self.metadata = metadata

    def load(self) -> list[Path]:
        from co2net_pipeline.extraction.video import list_videos

        return list_videos(Path(self._path), self._extensions)

    def save(self, data) -> None:
        raise DatasetError(f"{self._path}: raw videos are read-only inputs")

    @property
    def location(self) -> str:
        return str(self._path)

    def _exists(self) -> bool:
        return Path(self._path).is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "extensions": list(self._extensions)}


class PerVideoFeaturesDataset(AbstractDataset):
    """A folder of `<video>.npy` feature arrays, one per video, written one video at a time.

    `save(pending)` takes a node's `extraction.writer.PendingFeatures` and writes every video
    not already finished in the folder (atomically: an interrupted run resumes, a second run
    skips). `load()` returns an `extraction.writer.FeatureFolder` (paths and recorded problems;
    no array read).
    """

    def __init__(self, path: str, metadata: dict | None = None):
        self._path = PurePosixPath(path)
        self.metadata = metadata

    def load(self):
        from co2net_pipeline.extraction.writer import read_feature_folder

        return read_feature_folder(Path(self._path))

    def save(self, data) -> None:
        data.write(Path(self._path))

    def _exists(self) -> bool:
        return Path(self._path).is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
