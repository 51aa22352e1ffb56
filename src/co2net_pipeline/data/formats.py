"""Readers for the three feature input formats, all yielding `(video_id, features (T, 2D))` lazily.

- "wtalc": `<dir>/<Name>-I3D-JOINTFeatures.npy`, an object array with one (T_i, 2D) entry per
  video in the order of `<dir>/<Name>-Annotations/videoname.npy` (spec §1.1). Pickled; streamed
  entry by entry through the restricted unpickler (`npy_stream`), never held whole. Without the
  annotation folder the shipped THUMOS14 / ActivityNet1.2 annotations are used
  (`resolve_wtalc_layout`).
- "npy-folder": `<dir>/<video_id>.npy` files (T, 2D), or `<dir>/rgb/<video_id>.npy` and
  `<dir>/flow/<video_id>.npy` (T, D) each, concatenated RGB first; one file read at a time.
- "hdf5": one file with one dataset (T, 2D) per video, or one group per video holding `rgb` and
  `flow` datasets (T, D); a feature store written by `store.write_feature_store` also reads.

Annotations: W-TALC folder, ActivityNet-style JSON or a ground-truth CSV (by path type).
Problems raise `FeatureFormatError` (a `ValueError`) naming the file and the video.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from co2net_pipeline.data.annotations import (
    SHIPPED_DATASETS,
    Annotations,
    annotation_differences,
    load_activitynet_json,
    load_ambiguous_intervals,
    load_ground_truth_csv,
    load_shipped_annotations,
    load_wtalc_annotations,
    shipped_annotations_dir,
)
from co2net_pipeline.data.errors import DataValidationError
from co2net_pipeline.data.npy_stream import (
    NonArrayEntryError,
    TruncatedArrayError,
    iter_object_npy,
)
from co2net_pipeline.data.safe_npy import UnsafeNpyError, load_npy

logger = logging.getLogger(__name__)

FORMATS = ("wtalc", "npy-folder", "hdf5")
WTALC_FEATURES_SUFFIX = "-I3D-JOINTFeatures.npy"
# Bytes hashed at each end of a file by the cheap fingerprint: a single big feature file gets
# 1 MiB each side; files of a per-video folder get 64 KiB (thousands of files).
_SAMPLE_BYTES = 1 << 20
_FOLDER_SAMPLE_BYTES = 1 << 16


class FeatureFormatError(DataValidationError):
    """A feature file is unreadable or not in the declared format."""


def _file_digest(path: Path, sample: int | None, hasher) -> None:
    """Feed `path`'s name, size, mtime and content (whole, or `sample` bytes at each end)."""
    st = path.stat()
    hasher.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    with open(path, "rb") as fh:
        if sample is None or st.st_size <= 2 * sample:
            for block in iter(lambda: fh.read(1 << 22), b""):
                hasher.update(block)
        else:
            hasher.update(fh.read(sample))
            fh.seek(-sample, os.SEEK_END)
            hasher.update(fh.read(sample))


def fingerprint_files(
    paths: Iterable[Path], full: bool = False, sample: int = _SAMPLE_BYTES
) -> str:
    """Hex SHA-256 over files (directories: every file inside, sorted by relative path).

    Cheap mode (default) hashes name, size, mtime_ns and the first and last `sample` bytes of each
    file: any rewrite changes the mtime, and truncation or appending changes size and tail. It
    does not notice an in-place edit that restores the mtime. `full=True` hashes every byte
    (≈ 1–2 s per GB).
    """
    hasher = hashlib.sha256()
    for root in paths:
        root = Path(root)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for f in files:
            rel = f.relative_to(root) if root.is_dir() else Path(f.name)
            hasher.update(f"{rel.as_posix()}\0".encode())
            _file_digest(f, None if full else sample, hasher)
    return hasher.hexdigest()


class FeatureSource(ABC):
    """Lazy access to one dataset's per-video snippet features.

    video_ids: the videos the input holds, in its own order.
    feature_width: 2D when it is known without reading every video (else None).
    """

    format: str = ""

    def __init__(self, path: Path, annotation_paths: tuple[Path, ...] = ()):
        self.path = Path(path)
        self.annotation_paths = tuple(Path(p) for p in annotation_paths)

    @property
    @abstractmethod
    def video_ids(self) -> list[str]: ...

    @property
    def feature_width(self) -> int | None:
        return None

    @abstractmethod
    def location(self, video_id: str) -> str:
        """The file (and key) holding `video_id`'s features, for error messages."""

    @abstractmethod
    def _read(self, video_id: str) -> np.ndarray: ...

    def iter_features(
        self, video_ids: Iterable[str] | None = None
    ) -> Iterator[tuple[str, np.ndarray]]:
        """Yield `(video_id, features)` one video at a time, in `video_ids` order (default: source order).

        features: the array as stored (any numeric dtype), normally (T, 2D); checking shape and
        values is `validation`'s job.
        """
        for vid in self.video_ids if video_ids is None else video_ids:
            yield vid, self._read(vid)

    def _fingerprint_paths(self) -> list[Path]:
        return [self.path]

    def fingerprint(self, full: bool = False) -> str:
        """Identity of the inputs (features and annotations) — see `fingerprint_files`."""
        hasher = hashlib.sha256(f"{self.format}\0".encode())
        sample = _FOLDER_SAMPLE_BYTES if self.path.is_dir() else _SAMPLE_BYTES
        hasher.update(fingerprint_files(self._fingerprint_paths(), full, sample).encode())
        hasher.update(fingerprint_files(self.annotation_paths, full).encode())
        return hasher.hexdigest()

    def paired(self, found: AnnotationInput) -> FeatureSource:
        """This source with `found`'s annotation files in its fingerprint."""
        paired = copy.copy(self)
        paired.annotation_paths = tuple(found.files)
        return paired

    def close(self) -> None:  # noqa: B027 - optional hook: only sources with a cache override it
        """Release cached data (the W-TALC object array)."""

    def __enter__(self) -> FeatureSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _wtalc_header(path: Path) -> tuple[int, int | None]:
    """(number of entries, width or None) from the .npy header alone."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read(fh)
    except OSError as exc:
        raise FeatureFormatError(f"{path}: cannot read the feature file ({exc})") from exc
    except ValueError as exc:
        raise FeatureFormatError(f"{path}: not a .npy file ({exc})") from exc
    if dtype.hasobject and len(shape) == 1:
        return int(shape[0]), None
    if not dtype.hasobject and len(shape) == 3:  # (N, T, 2D): every video the same length
        return int(shape[0]), int(shape[2])
    raise FeatureFormatError(
        f"{path}: expected an object array of per-video (T, 2D) arrays, found "
        f"dtype {dtype} with shape {tuple(shape)}"
    )


def _wtalc_entries(path: Path, dense: bool, ids: list[str]) -> Iterator[np.ndarray]:
    """Every entry of a W-TALC features file in file order, one at a time; ids name the
    entries in errors."""
    if dense:  # (N, T, 2D): memory-mapped, one video copied out
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        for i in range(len(array)):
            yield np.array(array[i])
        return
    try:
        # encoding="bytes" as the reference: Python-2 pickled arrays need it for their buffers.
        yield from iter_object_npy(path, encoding="bytes")
    except UnsafeNpyError:
        raise
    except NonArrayEntryError as exc:
        vid = ids[exc.index] if exc.index < len(ids) else "?"
        raise FeatureFormatError(
            f"{path}[{exc.index}]: video {vid}: entry is a {exc.kind}, not an array"
        ) from exc
    except TruncatedArrayError as exc:
        vid = ids[exc.count] if exc.count < len(ids) else "?"
        raise FeatureFormatError(
            f"{path}[{exc.count}]: video {vid}: unreadable, the file is truncated or corrupt "
            f"from this entry on ({exc.count} of {len(ids)} entries read; {exc.reason})"
        ) from exc
    except ValueError as exc:
        raise FeatureFormatError(str(exc)) from exc


def _in_request_order(
    entries: Iterator[np.ndarray],
    wanted: list[str],
    positions: list[int],
    check: Callable[[str, object], np.ndarray],
) -> Iterator[tuple[str, np.ndarray]]:
    """(video_id, entry) of the `wanted` videos (at file `positions`) in request order, from
    one pass over the file's `entries`; out-of-order requests hold entries until their turn."""
    in_order = all(a < b for a, b in zip(positions, positions[1:], strict=False))
    by_position = dict(zip(positions, wanted, strict=True))
    held: dict[str, np.ndarray] = {}
    next_out = 0
    for i, entry in enumerate(entries):
        if next_out == len(wanted):
            break
        vid = by_position.get(i)
        if vid is None:
            continue
        entry = check(vid, entry)
        if in_order:
            next_out += 1
            yield vid, entry
            continue
        held[vid] = entry
        while next_out < len(wanted) and wanted[next_out] in held:
            yield wanted[next_out], held.pop(wanted[next_out])
            next_out += 1


class WtalcFeatureSource(FeatureSource):
    """`<Name>-I3D-JOINTFeatures.npy` aligned by position with the annotation `videoname.npy`.

    Streamed: every pass over the features unpickles the object array entry by entry
    (`npy_stream.iter_object_npy`), so memory holds about one video, never the file. A dense
    (N, T, 2D) array is memory-mapped. Entries beyond the annotation list get ids `<entry N>`
    (validation reports them as features without annotation).
    """

    format = "wtalc"

    def __init__(
        self, path: Path, annotated_ids: list[str], annotation_paths: tuple[Path, ...] = ()
    ):
        super().__init__(path, annotation_paths)
        self._annotated = list(annotated_ids)
        self._n_entries, self._width = _wtalc_header(self.path)
        ids = self._annotated[: self._n_entries]
        ids += [f"<entry {i}>" for i in range(len(ids), self._n_entries)]
        self._ids = ids
        self._position = {vid: i for i, vid in enumerate(ids)}
        self.layout: WtalcLayout | None = None

    @property
    def video_ids(self) -> list[str]:
        return list(self._ids)

    @property
    def feature_width(self) -> int | None:
        return self._width

    def location(self, video_id: str) -> str:
        return f"{self.path}[{self._position.get(video_id, '?')}]"

    def iter_features(
        self, video_ids: Iterable[str] | None = None
    ) -> Iterator[tuple[str, np.ndarray]]:
        """One streamed pass over the file; `video_ids` (default: all) in file order.

        A request out of file order is served by holding the requested entries until their
        turn (memory then grows with the request; ingestion always asks in file order).
        """
        wanted = self.video_ids if video_ids is None else list(video_ids)
        for vid in wanted:
            if vid not in self._position:
                raise FeatureFormatError(f"{self.path}: no features for video {vid}")
        entries = _wtalc_entries(self.path, self._width is not None, self._ids)
        positions = [self._position[v] for v in wanted]
        yield from _in_request_order(entries, wanted, positions, self._check_entry)

    def paired(self, found: AnnotationInput) -> WtalcFeatureSource:
        """Entries named by position after the W-TALC `videoname.npy` of `found`."""
        layout = found.layout
        if layout is None:
            raise FeatureFormatError(
                f"{self.path}: W-TALC features pair with their annotations by position; "
                "load the annotations with wtalc_features set to this file"
            )
        if layout.features_file.resolve() != self.path.resolve():
            raise FeatureFormatError(
                f"{self.path}: the annotations were paired with another feature file "
                f"({layout.features_file}); give both datasets the same features path"
            )
        ids = found.annotations.videos["video_id"].tolist()
        source = WtalcFeatureSource(self.path, ids, found.files)
        source.layout = layout
        return source

    def _check_entry(self, video_id: str, entry: object) -> np.ndarray:
        if not isinstance(entry, np.ndarray):
            raise FeatureFormatError(
                f"{self.location(video_id)}: video {video_id}: entry is a {type(entry).__name__}, not an array"
            )
        return entry

    def _read(self, video_id: str) -> np.ndarray:
        return next(self.iter_features([video_id]))[1]


def _npy_stems(folder: Path) -> set[str]:
    """Video ids of `folder/*.npy`, hidden files left out: a writer's temporary file
    (`.<video>.npy.tmp-<pid>-<hex>.npy`, `common.atomic`) is not a video."""
    return {p.stem for p in folder.glob("*.npy") if not p.name.startswith(".")}


class NpyFolderSource(FeatureSource):
    """`<dir>/<video_id>.npy` (T, 2D), or `<dir>/rgb/<id>.npy` + `<dir>/flow/<id>.npy` (T, D) each."""

    format = "npy-folder"

    def __init__(self, path: Path, annotation_paths: tuple[Path, ...] = ()):
        super().__init__(path, annotation_paths)
        if not self.path.is_dir():
            raise FeatureFormatError(f"{self.path}: not a folder of per-video .npy files")
        self.split = (self.path / "rgb").is_dir() or (self.path / "flow").is_dir()
        if self.split:
            rgb = _npy_stems(self.path / "rgb")
            flow = _npy_stems(self.path / "flow")
            if rgb != flow:
                odd = sorted(rgb ^ flow)
                side = "rgb" if odd[0] in rgb else "flow"
                other = "flow" if side == "rgb" else "rgb"
                raise FeatureFormatError(
                    f"{self.path / other}: video {odd[0]} has {side} features but no {other} features "
                    f"({len(odd)} such video(s))"
                )
            self._ids = sorted(rgb)
        else:
            self._ids = sorted(_npy_stems(self.path))
        if not self._ids:
            raise FeatureFormatError(f"{self.path}: no .npy feature files found")

    @property
    def video_ids(self) -> list[str]:
        return list(self._ids)

    def location(self, video_id: str) -> str:
        if self.split:
            return f"{self.path}/{{rgb,flow}}/{video_id}.npy"
        return str(self.path / f"{video_id}.npy")

    def _load_one(self, path: Path, video_id: str) -> np.ndarray:
        if not path.is_file():
            raise FeatureFormatError(f"{path}: no features for video {video_id}")
        try:
            array = load_npy(path)
        except ValueError as exc:
            message = str(exc).removeprefix(f"{path}: ")
            raise FeatureFormatError(f"{path}: video {video_id}: {message}") from exc
        if array.dtype.hasobject:
            raise FeatureFormatError(
                f"{path}: video {video_id}: expected a numeric array, found dtype object"
            )
        return array

    def _read(self, video_id: str) -> np.ndarray:
        if not self.split:
            return self._load_one(self.path / f"{video_id}.npy", video_id)
        rgb = self._load_one(self.path / "rgb" / f"{video_id}.npy", video_id)
        flow = self._load_one(self.path / "flow" / f"{video_id}.npy", video_id)
        return _join_modalities(rgb, flow, self.location(video_id), video_id)


def _join_modalities(rgb: np.ndarray, flow: np.ndarray, where: str, video_id: str) -> np.ndarray:
    if rgb.ndim != 2 or flow.ndim != 2:
        raise FeatureFormatError(
            f"{where}: video {video_id}: rgb and flow must be 2-D (T, D), got shapes {rgb.shape} and {flow.shape}"
        )
    if rgb.shape != flow.shape:
        raise FeatureFormatError(
            f"{where}: video {video_id}: rgb features have shape {rgb.shape}, flow {flow.shape}; "
            "both modalities need the same snippets and width"
        )
    return np.concatenate([rgb, flow], axis=1)


# An HDF5 dataset may declare any shape and store almost nothing (chunked, compressed, or never
# written): reading it allocates the declared size. Features compress far less than this.
_MAX_DECLARED_BYTES = 2**30
_MAX_COMPRESSION = 64


def _checked_size(dataset, where: str, video_id: str, name: str | None = None):
    """`dataset`, unless it is no dataset (a group where `rgb` should be) or its declared size
    is over 1 GiB and over 64× what the file stores for it: a corrupt or hostile header,
    refused before the read allocates it."""
    import h5py

    if not isinstance(dataset, h5py.Dataset):
        raise FeatureFormatError(
            f"{where}: video {video_id}: {name or video_id} is an HDF5 {type(dataset).__name__}, "
            "expected a (T, D) dataset of features"
        )
    declared = int(np.prod(dataset.shape, dtype=object) or 0) * dataset.dtype.itemsize
    if declared <= _MAX_DECLARED_BYTES:
        return dataset
    stored = int(dataset.id.get_storage_size())
    if declared > _MAX_COMPRESSION * max(stored, 2**20):
        raise FeatureFormatError(
            f"{where}: video {video_id}: declares shape {tuple(dataset.shape)} "
            f"({declared / 2**30:.1f} GiB) but the file stores {stored:,} bytes for it: "
            "corrupt or not features; refused before reading"
        )
    return dataset


class Hdf5Source(FeatureSource):
    """One HDF5 file: a (T, 2D) dataset per video, or a group per video with `rgb`/`flow` (T, D).

    A feature store (`store.write_feature_store`) is recognised by its root attribute and read
    from its `features` group.
    """

    format = "hdf5"

    def __init__(self, path: Path, annotation_paths: tuple[Path, ...] = ()):
        import h5py

        super().__init__(path, annotation_paths)
        try:
            with h5py.File(self.path, "r") as fh:
                self._group = (
                    "features" if fh.attrs.get("format") == "co2net-feature-store" else "/"
                )
                self._ids = list(fh[self._group].keys())
                self._linked = _linked_files(self, fh[self._group])
        except (OSError, KeyError) as exc:
            raise FeatureFormatError(f"{self.path}: not a readable HDF5 file ({exc})") from exc

    @property
    def video_ids(self) -> list[str]:
        return list(self._ids)

    def location(self, video_id: str) -> str:
        prefix = "" if self._group == "/" else f"{self._group}/"
        return f"{self.path}:/{prefix}{video_id}"

    def _fingerprint_paths(self) -> list[Path]:
        return [self.path, *(p for p in self._linked if p.exists())]

    def iter_features(
        self, video_ids: Iterable[str] | None = None
    ) -> Iterator[tuple[str, np.ndarray]]:
        import h5py

        try:
            fh = h5py.File(self.path, "r")
        except OSError as exc:
            raise FeatureFormatError(f"{self.path}: not a readable HDF5 file ({exc})") from exc
        with fh:
            group = fh[self._group]
            for vid in self.video_ids if video_ids is None else video_ids:
                yield vid, self._read_from(group, vid)

    def _read(self, video_id: str) -> np.ndarray:
        import h5py

        with h5py.File(self.path, "r") as fh:
            return self._read_from(fh[self._group], video_id)

    def _read_from(self, group, video_id: str) -> np.ndarray:
        import h5py

        where = self.location(video_id)
        if video_id not in group:
            raise FeatureFormatError(f"{where}: no features for video {video_id}")
        try:
            node = group[video_id]
            if isinstance(node, h5py.Group):
                missing = [k for k in ("rgb", "flow") if k not in node]
                if missing:
                    raise FeatureFormatError(
                        f"{where}: video {video_id}: group lacks {' and '.join(missing)} dataset(s)"
                    )
                rgb, flow = (_checked_size(node[k], where, video_id, k) for k in ("rgb", "flow"))
                return _join_modalities(rgb[()], flow[()], where, video_id)
            return _checked_size(node, where, video_id)[()]
        except FeatureFormatError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise FeatureFormatError(f"{where}: video {video_id}: unreadable ({exc})") from exc


def _linked_files(source: Hdf5Source, group) -> list[Path]:
    """The files external links (of a video, or of its rgb / flow) point to: their changes
    must change the fingerprint. A soft link from one video to another is refused: it would
    silently train and score the same features twice."""
    import h5py

    files = set()
    for vid in source.video_ids:
        links = [(vid, group.get(vid, getlink=True))]
        if isinstance(links[0][1], h5py.HardLink) and isinstance(group[vid], h5py.Group):
            links += [(f"{vid}/{k}", group[vid].get(k, getlink=True)) for k in group[vid]]
        for name, link in links:
            if isinstance(link, h5py.ExternalLink):
                target = Path(link.filename)  # HDF5 looks beside the file, then in the cwd
                beside = source.path.parent / target
                files.add(beside if target.is_absolute() or beside.exists() else target)
            elif isinstance(link, h5py.SoftLink):
                raise FeatureFormatError(
                    f"{source.location(vid)}: video {vid}: {name} is a soft link to "
                    f"{link.path}; store each video's own features"
                )
    return sorted(files)


def load_annotations(path: str | Path, name: str | None = None) -> Annotations:
    """Annotations from a W-TALC folder, an ActivityNet-style `.json` or a ground-truth `.csv`.

    Malformed files (inconsistent arrays, unsafe pickles, bad JSON/CSV) raise
    `DataValidationError`; a missing path raises `FileNotFoundError`.
    """
    try:
        return _load_annotations(Path(path), name)
    except DataValidationError:
        raise
    except ValueError as exc:
        raise DataValidationError(str(exc)) from exc


def _load_annotations(path: Path, name: str | None) -> Annotations:
    if path.is_dir():
        return load_wtalc_annotations(path, name=name)
    if not path.exists():
        raise FileNotFoundError(f"{path}: annotation file not found")
    if path.suffix.lower() == ".json":
        return load_activitynet_json(path, name=name)
    if path.suffix.lower() == ".csv":
        return load_ground_truth_csv(path, name=name)
    raise ValueError(f"{path}: annotations must be a W-TALC folder, a .json or a .csv file")


# Videos per shipped dataset: a W-TALC feature file with this many entries is that dataset.
SHIPPED_VIDEO_COUNTS = {"thumos14": 412, "activitynet12": 7202}
AMBIGUOUS_FILE = "Ambiguous_test.txt"


@dataclass(frozen=True)
class WtalcLayout:
    """Where a W-TALC dataset's files are, as found on disk.

    features_file: `<Name>-I3D-JOINTFeatures.npy`. name: the dataset name (`<Name>`).
    shipped: "thumos14" / "activitynet12" when the name or the entry count says which shipped
        dataset this is, else None.
    annotations_dir: the user's `<Name>-Annotations/` folder, or the shipped one.
    annotations_origin: "user" or "shipped".
    ambiguous_file: the `Ambiguous_test.txt` used (the user's, else the shipped THUMOS14 one),
        or None when the dataset has none. ambiguous_origin: "user", "shipped" or "none".
    """

    features_file: Path
    name: str
    shipped: str | None
    annotations_dir: Path
    annotations_origin: str
    ambiguous_file: Path | None
    ambiguous_origin: str

    @property
    def ambiguous_state(self) -> str:
        """One line for logs and the MLflow run, e.g. `on (shipped Ambiguous_test.txt)`."""
        if self.ambiguous_file is None:
            return f"off (no {AMBIGUOUS_FILE} for {self.name})"
        return f"on ({self.ambiguous_origin} {AMBIGUOUS_FILE})"


def _shipped_key(name: str | None, n_entries: int | None) -> str | None:
    """The shipped dataset a name ("Thumos14reduced", "thumos14") or an entry count designates."""
    if name:
        lowered = name.lower()
        for key, shipped_name in SHIPPED_DATASETS.items():
            if lowered in (key, shipped_name.lower()):
                return key
    for key, count in SHIPPED_VIDEO_COUNTS.items():
        if n_entries == count:
            return key
    return None


def _expected_layout() -> str:
    return " or ".join(
        f"{name}{WTALC_FEATURES_SUFFIX} ({SHIPPED_VIDEO_COUNTS[key]} videos)"
        for key, name in SHIPPED_DATASETS.items()
    )


def _find_features_file(features_path: Path, dataset_name: str | None) -> Path:
    if not features_path.is_dir():
        if not features_path.is_file():
            raise FileNotFoundError(f"{features_path}: W-TALC feature file not found")
        return features_path
    if dataset_name:
        candidate = features_path / f"{dataset_name}{WTALC_FEATURES_SUFFIX}"
        if candidate.is_file():
            return candidate
        shipped = _shipped_key(dataset_name, None)
        if shipped is None or not list(features_path.glob(f"*{WTALC_FEATURES_SUFFIX}")):
            raise FileNotFoundError(f"{candidate}: W-TALC feature file not found")
    found = sorted(features_path.glob(f"*{WTALC_FEATURES_SUFFIX}"))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise FileNotFoundError(
            f"{features_path}: {what} '*{WTALC_FEATURES_SUFFIX}' file(s); expected one of "
            f"{_expected_layout()}, optionally beside its -Annotations folder "
            "(or pass the file or dataset_name)"
        )
    return found[0]


def resolve_wtalc_layout(
    features_path: str | Path,
    annotations_path: str | Path | None = None,
    dataset_name: str | None = None,
) -> WtalcLayout:
    """Find the feature file, the annotation folder and `Ambiguous_test.txt` of a W-TALC dataset.

    Accepts the layouts W-TALC distributes: the feature file alone (the shipped annotations of
    THUMOS14 / ActivityNet1.2 are used, recognised by name or by video count), the feature file
    beside its `<Name>-Annotations/` folder (with or without `Ambiguous_test.txt`), or a folder
    holding either. A THUMOS14 annotation folder without `Ambiguous_test.txt` gets the shipped
    one (W-TALC's folder never had it; the reference reads it from its own repository).
    Raises FileNotFoundError / FeatureFormatError with one line naming the path and what was
    expected.
    """
    features_path = Path(features_path)
    if not features_path.exists():
        raise FileNotFoundError(f"{features_path}: features not found")
    feat_file = _find_features_file(features_path, dataset_name)
    n_entries, _ = _wtalc_header(feat_file)  # a broken feature file is reported first
    inferred = (
        feat_file.name[: -len(WTALC_FEATURES_SUFFIX)]
        if feat_file.name.endswith(WTALC_FEATURES_SUFFIX)
        else feat_file.stem
    )
    name = dataset_name or inferred
    shipped = _shipped_key(name, n_entries) or _shipped_key(inferred, None)
    if annotations_path is not None:
        ann_dir = Path(annotations_path)
        if not ann_dir.exists():
            raise FileNotFoundError(f"{ann_dir}: annotation folder not found")
        if not ann_dir.is_dir():
            raise FeatureFormatError(
                f"{ann_dir}: W-TALC features pair with their annotations by position, so they "
                f"need the W-TALC folder ({name}-Annotations/ with videoname.npy), not a file"
            )
        origin = "user"
    elif (feat_file.parent / f"{name}-Annotations").is_dir():
        ann_dir, origin = feat_file.parent / f"{name}-Annotations", "user"
    elif (feat_file.parent / f"{inferred}-Annotations").is_dir():
        ann_dir, origin = feat_file.parent / f"{inferred}-Annotations", "user"
    elif shipped is not None:
        ann_dir, origin = shipped_annotations_dir(shipped), "shipped"
        expected = SHIPPED_VIDEO_COUNTS[shipped]
        if n_entries != expected:
            raise FeatureFormatError(
                f"{feat_file}: {n_entries} videos, but the shipped {SHIPPED_DATASETS[shipped]} "
                f"annotations have {expected}; put the matching {name}-Annotations folder beside it"
            )
    else:
        raise FeatureFormatError(
            f"{feat_file}: {n_entries} videos match neither "
            + " nor ".join(f"{SHIPPED_DATASETS[k]} ({c})" for k, c in SHIPPED_VIDEO_COUNTS.items())
            + f", and there is no {name}-Annotations folder beside it (or give the annotation folder: raw_data.annotations / --annotations)"
        )
    ambiguous_file: Path | None = None
    ambiguous_origin = "none"
    if ann_dir.is_dir() and (ann_dir / AMBIGUOUS_FILE).is_file():
        ambiguous_file = ann_dir / AMBIGUOUS_FILE
        ambiguous_origin = "shipped" if origin == "shipped" else "user"
    elif shipped is not None and (shipped_annotations_dir(shipped) / AMBIGUOUS_FILE).is_file():
        ambiguous_file = shipped_annotations_dir(shipped) / AMBIGUOUS_FILE
        ambiguous_origin = "shipped"
    return WtalcLayout(feat_file, name, shipped, ann_dir, origin, ambiguous_file, ambiguous_origin)


def layout_summary(source: FeatureSource, annotations: Annotations) -> dict[str, str]:
    """Where the annotations and the ambiguous intervals came from, for the report and MLflow.

    Sources without a W-TALC layout (npy-folder, hdf5) read a JSON / CSV, which has no
    ambiguous intervals unless the annotations carry some: the filter is then off.
    """
    layout = getattr(source, "layout", None)
    if layout is None:
        where = ", ".join(str(p) for p in source.annotation_paths) or annotations.name
        if len(annotations.ambiguous):
            ambiguous = f"{where} ({len(annotations.ambiguous)} intervals)"
        else:
            ambiguous = f"none ({where} has no ambiguous intervals: ambiguous filter off)"
        shipped = {shipped_annotations_dir(k) for k in SHIPPED_DATASETS}
        origin = "shipped" if set(source.annotation_paths) & shipped else "user"
        return {"annotations_source": f"{origin} ({where})", "ambiguous_intervals": ambiguous}
    if layout.ambiguous_file is None:
        ambiguous = f"none (no {AMBIGUOUS_FILE} for {layout.name}: ambiguous filter off)"
    else:
        ambiguous = (
            f"{layout.ambiguous_origin} {AMBIGUOUS_FILE} ({len(annotations.ambiguous)} intervals)"
        )
    return {
        "annotations_source": f"{layout.annotations_origin} ({layout.annotations_dir})",
        "ambiguous_intervals": ambiguous,
    }


def _log_layout(layout: WtalcLayout, annotations: Annotations) -> None:
    """INFO / WARNING lines saying which annotations and which ambiguous intervals are used."""
    if layout.annotations_origin == "shipped":
        logger.info(
            "%s: no %s-Annotations folder beside it; using the shipped %s annotations (%s)",
            layout.features_file,
            layout.name,
            SHIPPED_DATASETS[layout.shipped],
            layout.annotations_dir,
        )
    elif layout.ambiguous_origin == "shipped":
        logger.warning(
            "%s has no %s (W-TALC's folder does not ship it): using the shipped one (%s)",
            layout.annotations_dir,
            AMBIGUOUS_FILE,
            layout.ambiguous_file,
        )
    if layout.ambiguous_file is None:
        logger.info("ambiguous filter off: %s has no %s", layout.name, AMBIGUOUS_FILE)
    else:
        logger.info(
            "ambiguous filter %s: %d intervals from %s",
            layout.ambiguous_state,
            len(annotations.ambiguous),
            layout.ambiguous_file,
        )


@dataclass(frozen=True)
class AnnotationInput:
    """Annotations as loaded from the raw layer, with where they came from.

    files: the annotation files and folders, fingerprinted with the features (a change to either
        re-ingests). layout: the W-TALC layout they were found in (None for other formats).
    """

    annotations: Annotations
    files: tuple[Path, ...]
    layout: WtalcLayout | None = None


def resolve_annotations(
    annotations_path: str | Path | None = None,
    dataset_name: str | None = None,
    *,
    wtalc_features: str | Path | None = None,
) -> AnnotationInput:
    """The annotations of a dataset: a W-TALC folder, an ActivityNet-style JSON or a CSV.

    wtalc_features: the W-TALC feature file (or its folder) the annotations pair with by
    position. The folder defaults to `<Name>-Annotations/` beside it, else the shipped THUMOS14 /
    ActivityNet1.2 annotations (by name or by video count, `resolve_wtalc_layout`); the
    differences from the shipped annotations are logged. Without it, `annotations_path` is
    needed unless `dataset_name` names a shipped dataset.
    """
    if wtalc_features is not None:
        layout = resolve_wtalc_layout(wtalc_features, annotations_path, dataset_name)
        annotations = load_annotations(layout.annotations_dir, name=layout.name)
        if layout.ambiguous_origin == "shipped" and layout.annotations_origin == "user":
            annotations = dataclasses.replace(
                annotations, ambiguous=load_ambiguous_intervals(layout.ambiguous_file)
            )
        if layout.annotations_origin == "user" and layout.shipped is not None:
            for line in annotation_differences(
                annotations, load_shipped_annotations(layout.shipped)
            ):
                logger.warning(
                    "%s differs from the shipped annotations: %s", layout.annotations_dir, line
                )
        _log_layout(layout, annotations)
        files = (layout.annotations_dir,) + (
            (layout.ambiguous_file,) if layout.ambiguous_origin == "shipped" else ()
        )
        return AnnotationInput(annotations, files, layout)
    shipped = _shipped_key(dataset_name, None)
    if annotations_path is None and shipped is not None:
        annotations_path = shipped_annotations_dir(shipped)
        logger.info(
            "no annotations given; using the shipped %s annotations (%s)",
            SHIPPED_DATASETS[shipped],
            annotations_path,
        )
    if annotations_path is None:
        raise ValueError(
            "no annotations: give their path (ActivityNet JSON, CSV or W-TALC folder), "
            f"or a shipped dataset_name ({', '.join(SHIPPED_DATASETS.values())})"
        )
    stem = Path(annotations_path).stem  # a W-TALC folder `<Name>-Annotations` names <Name>
    name = dataset_name or stem.removesuffix("-Annotations")
    annotations = load_annotations(annotations_path, name=name)
    if annotations.ambiguous.empty:
        logger.info("ambiguous filter off: %s has no ambiguous intervals", annotations_path)
    return AnnotationInput(annotations, (Path(annotations_path),))


def _existing_features(features_path: str | Path, fmt: str) -> Path:
    features_path = Path(features_path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown feature format '{fmt}' (choose from {', '.join(FORMATS)})")
    if not features_path.exists():
        raise FileNotFoundError(f"{features_path}: features not found")
    return features_path


def open_features(
    features_path: str | Path, fmt: str, dataset_name: str | None = None
) -> FeatureSource:
    """The features at `features_path` in format `fmt`, not yet paired with annotations.

    wtalc: the `<Name>-I3D-JOINTFeatures.npy` file or its folder (`dataset_name` picks the file
    when the folder holds several); its entries are `<entry N>` until `paired`. Nothing is read
    beyond headers and file lists.
    """
    features_path = _existing_features(features_path, fmt)
    if fmt == "wtalc":
        return WtalcFeatureSource(_find_features_file(features_path, dataset_name), [])
    return (NpyFolderSource if fmt == "npy-folder" else Hdf5Source)(features_path)


def open_feature_source(
    features_path: str | Path,
    fmt: str,
    annotations_path: str | Path | None = None,
    dataset_name: str | None = None,
) -> tuple[FeatureSource, Annotations]:
    """Open features in format `fmt` ("wtalc", "npy-folder", "hdf5") with their annotations.

    wtalc: `features_path` is the folder or the `<Name>-I3D-JOINTFeatures.npy` file; annotations
    default to `<folder>/<Name>-Annotations/`, else the shipped THUMOS14 / ActivityNet1.2 ones
    (`resolve_annotations`; the source's `layout` says what was used). Other formats need
    `annotations_path` (W-TALC folder, ActivityNet JSON or CSV) unless `dataset_name` names a
    shipped dataset. Nothing is read beyond headers and file lists until iteration.
    """
    features_path = _existing_features(features_path, fmt)
    if fmt == "wtalc":
        found = resolve_annotations(annotations_path, dataset_name, wtalc_features=features_path)
    else:
        if annotations_path is None and _shipped_key(dataset_name, None) is None:
            raise ValueError(
                f"format '{fmt}' needs annotations_path (ActivityNet JSON, CSV or W-TALC folder)"
            )
        found = resolve_annotations(annotations_path, dataset_name)  # null: the annotations' name
    return open_features(features_path, fmt, dataset_name).paired(found), found.annotations
