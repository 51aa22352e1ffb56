"""kedro-datasets' file datasets with atomic saves, for the catalog.

kedro-datasets writes in place: a run killed during a save (kill -9, a full disk) leaves a 0-byte
or half-written file where the previous good one was. These subclasses keep every behaviour of
the originals and change one thing: on the local file system, `open(path, "w")` writes a hidden
temporary file beside `path` that replaces it only when the save completes
(`common.atomic.atomic_path`); a failed save leaves the previous file and no temporary one.
A full disk is a `DiskFullError` naming the file. Other file systems (s3://, ...) are untouched.
During a `kedro run` the previous file is kept until the run ends, and put back if it fails
(`common.output_journal`).

    type: co2net_pipeline.kedro_glue.atomic_datasets.JSONDataset    # instead of json.JSONDataset
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from fsspec.implementations.local import LocalFileSystem
from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset as _MatplotlibDataset
from kedro_datasets.pandas import CSVDataset as _CSVDataset
from kedro_datasets.pandas import ParquetDataset as _ParquetDataset
from kedro_datasets.text import TextDataset as _TextDataset

from co2net_pipeline.common.atomic import atomic_path
from co2net_pipeline.common.disk_space import DiskFullError, is_disk_full
from co2net_pipeline.common.output_journal import keep_previous

__all__ = ["CSVDataset", "JSONDataset", "MatplotlibDataset", "ParquetDataset", "TextDataset"]


class AtomicLocalFileSystem:
    """A local fsspec file system whose `open` for writing ("w", "x") is atomic; everything
    else is the wrapped file system's."""

    def __init__(self, fs: LocalFileSystem) -> None:
        self.wrapped = fs

    def __getattr__(self, name: str) -> Any:
        # unpickling (a logged pipeline model) asks for attributes before `wrapped` is set
        if name == "wrapped" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.wrapped, name)

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if not set(mode) & {"w", "x"}:
            return self.wrapped.open(path, mode, **kwargs)
        return self._atomic_open(path, mode.replace("x", "w"), **kwargs)

    @contextmanager
    def _atomic_open(self, path: str, mode: str, **kwargs: Any) -> Iterator[IO]:
        try:
            keep_previous(path)
            with atomic_path(path) as tmp, self.wrapped.open(str(tmp), mode, **kwargs) as file:
                yield file
        except OSError as exc:
            if is_disk_full(exc) and not isinstance(exc, DiskFullError):
                raise DiskFullError(path) from exc
            raise


class AtomicSaves:
    """Mixin: the dataset's local file system (`self._fs`, set by the dataset's __init__) is
    wrapped in `AtomicLocalFileSystem` as it is assigned."""

    @property
    def _fs(self) -> Any:
        return self.__dict__["_atomic_fs"]

    @_fs.setter
    def _fs(self, fs: Any) -> None:
        local = isinstance(fs, LocalFileSystem)
        self.__dict__["_atomic_fs"] = AtomicLocalFileSystem(fs) if local else fs


class JSONDataset(AtomicSaves, _JSONDataset):
    """`json.JSONDataset`, saved atomically."""


class CSVDataset(AtomicSaves, _CSVDataset):
    """`pandas.CSVDataset`, saved atomically."""


class ParquetDataset(AtomicSaves, _ParquetDataset):
    """`pandas.ParquetDataset`, saved atomically."""


class TextDataset(AtomicSaves, _TextDataset):
    """`text.TextDataset`, saved atomically."""


class MatplotlibDataset(AtomicSaves, _MatplotlibDataset):
    """`matplotlib.MatplotlibDataset`, each image saved atomically."""
