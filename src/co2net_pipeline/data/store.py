"""HDF5 stores: the validated feature store and generic per-video array stores (CAS, attention).

Feature store layout (one file):
    /features/<video_id>   (T, 2D) float32 or float16, contiguous: no chunking or compression,
                           because on float features lzf/gzip saved only 7–17 % of the size for
                           13–30× slower reads (60 videos × (100–600, 2048): 0.05 s plain vs
                           0.7 s lzf, 1.5 s gzip-1); reading a video is one contiguous read
    /index/video_ids       (N,) utf-8 strings, store order
    /index/lengths         (N,) int64, T per video
    root attributes        format, format_version, feature_dim (D per modality), dtype,
                           n_videos, created_at (UTC ISO 8601), plus the caller's attrs
                           (fingerprint, dataset_name, params_json, …)
Array store layout: /videos/<video_id>/<name> arrays, /index/video_ids, root attributes.

Every write goes through `co2net_pipeline.common.atomic.atomic_path` (a unique temporary name, moved
over `<path>` only when complete; on any exception, KeyboardInterrupt included, the temporary
file is removed), so an interrupted write leaves the previous store intact.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

from co2net_pipeline.common.atomic import atomic_path, remove_stale_temps
from co2net_pipeline.common.disk_space import DiskFullError, is_disk_full, require_free_space

STORE_FORMAT = "co2net-feature-store"
ARRAY_STORE_FORMAT = "co2net-array-store"
FORMAT_VERSION = 1
_DTYPES = {"float32": np.float32, "float16": np.float16}
_FLOAT16_MAX = float(np.finfo(np.float16).max)


@contextmanager
def _atomic_h5(path: str | Path) -> Iterator[h5py.File]:
    """An HDF5 file open for writing at a temporary name, moved to `path` only on success.
    A full disk is a `DiskFullError` naming `path`, and the temporary file is removed; those
    of a killed writer are removed first (`remove_stale_temps`)."""
    remove_stale_temps(path)
    with atomic_path(path) as tmp:
        fh = h5py.File(tmp, "w")
        try:
            yield fh
            fh.close()
        except BaseException as exc:
            _abandon(fh, tmp)
            if is_disk_full(exc) and not isinstance(exc, DiskFullError):
                raise DiskFullError(path) from exc
            raise


def _abandon(fh: h5py.File, tmp: Path) -> None:
    """Close a file HDF5 failed to write. After a failed write its close fails too, and HDF5
    retries at interpreter exit and crashes (segfault); emptying the file first frees the disk,
    so the close succeeds. The caller removes the file."""
    with contextlib.suppress(OSError):
        os.truncate(tmp, 0)
    with contextlib.suppress(Exception):
        fh.close()


def _write_video(fh: h5py.File, path: Path, vid: str, array: np.ndarray) -> None:
    """One video into /features, flushed at once: HDF5 otherwise writes it when the dataset
    object is dropped, where a failure (a full disk) is only printed, never raised."""
    require_free_space(fh.filename, array.nbytes, f"video {vid}")
    try:
        written = fh["features"].create_dataset(vid, data=array)
        fh.flush()  # while `written` lives: its data is written now, errors raise here
        del written
    except (OSError, RuntimeError) as exc:
        if is_disk_full(exc):
            raise DiskFullError(path, f"while writing video {vid}") from exc
        raise


def _check_key(video_id: str, kind: str = "video id") -> str:
    if not isinstance(video_id, str) or not video_id or "/" in video_id or video_id in (".", ".."):
        raise ValueError(
            f"{kind} {video_id!r} cannot be an HDF5 name (empty, '.', '..' or contains '/')"
        )
    return video_id


def _put_attrs(node, attrs: Mapping | None) -> None:
    for key, value in (attrs or {}).items():
        if value is None:
            continue
        if isinstance(value, str | bool | int | float | np.generic):
            node.attrs[key] = value
        else:  # dicts, lists: HDF5 attributes hold scalars and arrays only
            node.attrs[key] = json.dumps(value, sort_keys=True, default=str)


def _get_attrs(node) -> dict:
    out = {}
    for key, value in node.attrs.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def _write_index(fh: h5py.File, video_ids: list[str], lengths: list[int] | None = None) -> None:
    index = fh.create_group("index")
    index.create_dataset(
        "video_ids", data=np.array(video_ids, dtype=object), dtype=h5py.string_dtype()
    )
    if lengths is not None:
        index.create_dataset("lengths", data=np.asarray(lengths, dtype=np.int64))


def write_feature_store(
    path: str | Path,
    items: Iterable[tuple[str, np.ndarray]],
    dtype: str = "float32",
    attrs: Mapping | None = None,
    expected_bytes: int = 0,
) -> Path:
    """Stream `(video_id, features (T, 2D))` pairs into a feature store at `path`, atomically.

    One video is held in memory at a time. dtype: "float32" or "float16" on disk (read back as
    float32; float16 refuses values beyond ±65504). attrs: extra root attributes (fingerprint,
    dataset_name, …); `feature_dim` in attrs is used only when `items` is empty.
    Raises ValueError naming the video for a non-2-D array, an odd or inconsistent width, a
    duplicated id or an id that is not a valid HDF5 name. expected_bytes: the features' size
    on disk when known: less free space is a `DiskFullError` before anything is written (as is
    a disk that fills up during the write).
    """
    if dtype not in _DTYPES:
        raise ValueError(f"store dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    np_dtype = _DTYPES[dtype]
    path = Path(path)
    require_free_space(path, expected_bytes, "the feature store")
    ids: list[str] = []
    lengths: list[int] = []
    seen: set[str] = set()
    width: int | None = None
    with _atomic_h5(path) as fh:
        fh.create_group("features")
        for vid, array in items:
            _check_key(vid)
            if vid in seen:
                raise ValueError(f"{path}: video {vid} given twice")
            array = np.asarray(array)
            if array.ndim != 2:
                raise ValueError(
                    f"{path}: video {vid}: features must be (T, 2D), got shape {array.shape}"
                )
            if width is None:
                if array.shape[1] % 2:
                    raise ValueError(
                        f"{path}: video {vid}: {array.shape[1]} columns cannot split into RGB and flow"
                    )
                width = array.shape[1]
            elif array.shape[1] != width:
                raise ValueError(
                    f"{path}: video {vid}: features have {array.shape[1]} columns, expected {width}"
                )
            if np_dtype is np.float16 and array.size and np.nanmax(np.abs(array)) > _FLOAT16_MAX:
                raise ValueError(
                    f"{path}: video {vid}: values beyond ±{_FLOAT16_MAX:g} overflow float16"
                )
            _write_video(fh, path, vid, array.astype(np_dtype, copy=False))
            ids.append(vid)
            lengths.append(int(array.shape[0]))
            seen.add(vid)
        _write_index(fh, ids, lengths)
        feature_dim = width // 2 if width is not None else int((attrs or {}).get("feature_dim", 0))
        _put_attrs(fh, attrs)
        _put_attrs(
            fh,
            {
                "format": STORE_FORMAT,
                "format_version": FORMAT_VERSION,
                "feature_dim": feature_dim,
                "dtype": dtype,
                "n_videos": len(ids),
                "created_at": (attrs or {}).get("created_at")
                or datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
    return path


class _ReadHandle:
    """A read-only h5py handle opened on first use and re-opened in a forked child (h5py
    handles must not cross a fork, e.g. into DataLoader workers); pickled without it, for
    spawn-started workers, and reopened lazily there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: h5py.File | None = None
        self._pid: int | None = None

    def get(self) -> h5py.File:
        if self._fh is None or self._pid != os.getpid():
            try:
                self._fh = h5py.File(self.path, "r")
            except OSError as exc:
                raise ValueError(f"{self.path}: not a readable HDF5 feature store ({exc})") from exc
            self._pid = os.getpid()
        return self._fh

    def close(self) -> None:
        if self._fh is not None and self._pid == os.getpid():
            self._fh.close()
        self._fh = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fh": None, "_pid": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: h5py may already be gone
            pass


class FeatureStore:
    """Lazy reader of a feature store: one video read per `store[video_id]`.

    video_ids: store order. lengths: {video_id: T}. feature_dim: D per modality.
    `store[vid]` → float32 (T, 2D). The HDF5 handle is opened on first use and re-opened in a
    forked child (h5py handles must not cross a fork, e.g. into DataLoader workers).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._handle = _ReadHandle(self.path)
        fh = self._handle.get()
        if fh.attrs.get("format") != STORE_FORMAT:
            self.close()
            raise ValueError(f"{self.path}: not a co2net feature store (missing format attribute)")
        self.attrs = _get_attrs(fh)
        ids = [
            v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in fh["index/video_ids"][()]
        ]
        self.video_ids: list[str] = ids
        self.lengths: dict[str, int] = dict(
            zip(ids, (int(n) for n in fh["index/lengths"][()]), strict=True)
        )

    @property
    def feature_dim(self) -> int:
        return int(self.attrs["feature_dim"])

    @property
    def fingerprint(self) -> str | None:
        return self.attrs.get("fingerprint")

    @property
    def dataset_name(self) -> str | None:
        return self.attrs.get("dataset_name")

    def __len__(self) -> int:
        return len(self.video_ids)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self.lengths

    def __iter__(self) -> Iterator[str]:
        return iter(self.video_ids)

    def __getitem__(self, video_id: str) -> np.ndarray:
        if video_id not in self.lengths:
            raise KeyError(f"{self.path}: no video {video_id!r} in the feature store")
        return self._handle.get()["features"][video_id][()].astype(np.float32, copy=False)

    def load_all(self, video_ids: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """{video_id: float32 (T, 2D)} for `video_ids` (default: all, store order)."""
        return {vid: self[vid] for vid in (self.video_ids if video_ids is None else video_ids)}

    def view(self, video_ids: Iterable[str] | None = None) -> FeatureView:
        """A lazy `{video_id: float32 (T, 2D)}` mapping over `video_ids` (default: all): each
        lookup reads that video from the file, so a whole subset is never held in memory."""
        return FeatureView(self, self.video_ids if video_ids is None else video_ids)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, videos={len(self)}, feature_dim={self.attrs.get('feature_dim')})"


class FeatureView(Mapping):
    """Read-only `{video_id: float32 (T, 2D)}` over some videos of a `FeatureStore`, read on demand.

    shape_of(video_id) -> (T, 2D) from the store index (no read); nbytes: float32 size of all
    its videos. Consumers that hold one video at a time (inference, the training feature bank)
    then need memory for one video, not the subset.
    """

    def __init__(self, store: FeatureStore, video_ids: Iterable[str]) -> None:
        self.store = store
        self._ids = list(video_ids)
        self._members = set(self._ids)
        missing = [v for v in self._ids if v not in store]
        if missing:
            raise KeyError(
                f"{store.path}: no video {missing[0]!r} in the feature store ({len(missing)} missing)"
            )
        self._width = 2 * store.feature_dim

    def __getitem__(self, video_id: str) -> np.ndarray:
        if video_id not in self:
            raise KeyError(video_id)
        return self.store[video_id]

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def fingerprint(self) -> str | None:
        """The fingerprint of the inputs the store was ingested from (None: not recorded)."""
        return self.store.fingerprint

    def shape_of(self, video_id: str) -> tuple[int, int]:
        return (self.store.lengths[video_id], self._width)

    @property
    def nbytes(self) -> int:
        return sum(self.store.lengths[v] for v in self._ids) * self._width * 4


def read_store_attrs(path: str | Path) -> dict:
    """Root attributes of a feature or array store, or {} when `path` is missing or unreadable."""
    try:
        with h5py.File(path, "r") as fh:
            return _get_attrs(fh)
    except (OSError, FileNotFoundError):
        return {}


@dataclass
class PendingFeatureStore:
    """A feature store to be written: what the ingestion node returns for the catalog to save.

    items: a callable returning a fresh iterator of `(video_id, float32 (T, 2D))` (called only
    when the store is actually written). attrs must hold the input `fingerprint`; `write(path)`
    skips the rewrite when the existing store carries the same fingerprint, params_json and dtype.
    """

    items: Callable[[], Iterable[tuple[str, np.ndarray]]]
    attrs: dict = field(default_factory=dict)
    dtype: str = "float32"
    expected_bytes: int = 0  # the features on disk, checked against the free space first

    def is_current(self, path: str | Path) -> bool:
        """True when `path` already holds a store of the same inputs, parameters and dtype."""
        existing = read_store_attrs(path)
        if existing.get("format") != STORE_FORMAT or not self.attrs.get("fingerprint"):
            return False
        keys = ("fingerprint", "params_json", "dtype")
        wanted = {**self.attrs, "dtype": self.dtype}
        return all(existing.get(k) == wanted.get(k) for k in keys)

    def write(self, path: str | Path) -> bool:
        """Write the store unless it is current; returns True when it was (re)written."""
        if self.is_current(path):
            return False
        write_feature_store(
            path, self.items(), self.dtype, self.attrs, expected_bytes=self.expected_bytes
        )
        return True


def write_array_store(
    path: str | Path,
    per_video: Mapping[str, Mapping[str, np.ndarray]],
    attrs: Mapping | None = None,
) -> Path:
    """Write `{video_id: {name: array}}` (e.g. {"cas": (T, C+1), "attention": (T,)}) atomically."""
    path = Path(path)
    with _atomic_h5(path) as fh:
        videos = fh.create_group("videos")
        ids = []
        for vid, arrays in per_video.items():
            group = videos.create_group(_check_key(str(vid)))
            for name, array in arrays.items():
                group.create_dataset(_check_key(str(name), "array name"), data=np.asarray(array))
            fh.flush()  # a write error raises here, not in a dataset's destructor
            ids.append(str(vid))
        _write_index(fh, ids)
        _put_attrs(fh, attrs)
        _put_attrs(
            fh,
            {"format": ARRAY_STORE_FORMAT, "format_version": FORMAT_VERSION, "n_videos": len(ids)},
        )
    return path


def read_array_store(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """`{video_id: {name: array}}` from `write_array_store`, videos in written order."""
    path = Path(path)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 array store ({exc})") from exc
    with fh:
        if fh.attrs.get("format") != ARRAY_STORE_FORMAT:
            raise ValueError(f"{path}: not a co2net array store (missing format attribute)")
        ids = [
            v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in fh["index/video_ids"][()]
        ]
        videos = fh["videos"]
        return {vid: {name: ds[()] for name, ds in videos[vid].items()} for vid in ids}
