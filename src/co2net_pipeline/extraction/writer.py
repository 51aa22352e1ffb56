"""Per-video feature folders: `<folder>/<video>.npy` written one video at a time, atomically.

A video whose file is already there (a complete array: every write is a temporary file renamed
into place) is skipped, so an interrupted run resumes with the video it was on and a second run
does no work. A video that cannot be used is reported (`problems`) and the others go on.
Temporary files left by a killed run are removed when their process is gone.

Each folder records the protocol its videos were extracted with (`PROTOCOL_FILE`: sizes, rate,
flow bound, bf16, the weights' sha256). A run with another protocol stops, before any work,
with one line naming the folder and what changed, instead of mixing features of two protocols.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from co2net_pipeline.common.atomic import atomic_path, atomic_write_text, remove_stale_temps
from co2net_pipeline.data.errors import DataValidationError
from co2net_pipeline.extraction.video import VideoError

__all__ = [
    "PROBLEMS_FILE",
    "PROTOCOL_FILE",
    "FeatureFolder",
    "PendingFeatures",
    "Problem",
    "ProtocolChangedError",
    "WriteOutcome",
    "check_protocol",
    "finished_rows",
    "read_feature_folder",
]

logger = logging.getLogger(__name__)

# Stream folders (not the final one, which holds only `<video>.npy` for feature_ingestion)
# keep the videos they could not extract, with the reason, for the report.
PROBLEMS_FILE = "problems.json"
# Every folder, the final one included (feature_ingestion reads only its `*.npy`).
PROTOCOL_FILE = "extraction_protocol.json"
_TEMP = re.compile(r"^\.(.+)\.tmp-\d+-[0-9a-f]+\.npy$")  # group 1: the target's name


@dataclass(frozen=True)
class Problem:
    """Why a video has no features: its file and the one-line problem."""

    file: str
    problem: str

    @classmethod
    def of(cls, error: VideoError, fallback: Path) -> Problem:
        return cls(str(error.path or fallback), error.problem)


@dataclass
class WriteOutcome:
    """What a `PendingFeatures.write` did: videos written now, found finished, and skipped."""

    written: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    problems: dict[str, Problem] = field(default_factory=dict)


def finished_rows(path: Path, width: int) -> int | None:
    """Rows of the complete (T, width) array at `path`, None when it is absent or unusable."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if array.ndim != 2 or array.shape[1] != width or array.shape[0] < 1:
        return None
    return int(array.shape[0])


class ProtocolChangedError(DataValidationError):
    """A folder's finished videos were extracted with another protocol (one line)."""


def _flat(record: Mapping, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _shown(key: str, value: object) -> str:
    if key.endswith("sha256") and isinstance(value, str):
        return value[:12]
    return json.dumps(value)


def _finished_files(folder: Path) -> list[Path]:
    return [p for p in folder.glob("*.npy") if not p.name.startswith(".")]


def check_protocol(folder: str | Path, protocol: Mapping, stream: str = "features") -> None:
    """Record `protocol` in `folder` (`PROTOCOL_FILE`), or raise `ProtocolChangedError` when
    the folder's finished videos were extracted with another one.

    A folder with finished videos and no record (written before records existed) is assumed
    to match, with a warning; a folder without finished videos takes the new protocol.
    """
    folder = Path(folder)
    path, wanted = folder / PROTOCOL_FILE, json.loads(json.dumps(protocol))
    finished = _finished_files(folder) if folder.is_dir() else []
    recorded = None
    if path.is_file():
        try:
            recorded = json.loads(path.read_text())
        except ValueError as exc:
            raise ProtocolChangedError(f"{path}: not a protocol record ({exc})") from exc
    if recorded == wanted:
        return
    if recorded is not None and finished:
        old, new = _flat(recorded), _flat(wanted)
        changed = ", ".join(
            f"{k} {_shown(k, old.get(k))} (now {_shown(k, new.get(k))})"
            for k in sorted(old.keys() | new.keys())
            if old.get(k) != new.get(k)
        )
        raise ProtocolChangedError(
            f"{folder}: its {len(finished)} finished {stream} videos were extracted with "
            f"another protocol: {changed}; delete the folder (or choose another output) to "
            "extract them again, or run with the recorded settings"
        )
    if finished:
        logger.warning(
            "%s: %d finished %s videos without a protocol record (%s); assumed to match the "
            "current protocol",
            folder,
            len(finished),
            stream,
            PROTOCOL_FILE,
        )
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(wanted, indent=2) + "\n")


def _remove_stale_temporaries(folder: Path) -> None:
    """Temporary files of writers that no longer run (a killed extraction)."""
    targets = {match.group(1) for p in folder.glob(".*.npy") if (match := _TEMP.match(p.name))}
    for name in sorted(targets):
        remove_stale_temps(folder / name)


@dataclass
class PendingFeatures:
    """Per-video features computed when written (the datasets' `save` calls `write`).

    videos: the ids to write, in order; sources: id → video file (for messages);
    compute: id → (chunks, width) float32 array (may raise `VideoError`); width: columns;
    problems: videos already known to be unusable (their files could not be opened);
    stream: "rgb", "flow" or "joint", for the log; record_problems: keep `problems.json`;
    protocol: what the features depend on (`check_protocol`), None: not recorded.
    """

    videos: Sequence[str]
    sources: Mapping[str, Path]
    compute: Callable[[str], np.ndarray]
    width: int
    problems: Mapping[str, Problem] = field(default_factory=dict)
    stream: str = "features"
    record_problems: bool = True
    protocol: Mapping | None = None

    def _log_skipped(self, video_id: str, problem: Problem) -> None:
        logger.warning(
            "%s: skipped %s (video %s): %s", self.stream, problem.file, video_id, problem.problem
        )

    def write(self, folder: str | Path) -> WriteOutcome:
        """Write `<folder>/<video>.npy` for every video not finished there; returns what it did."""
        folder = Path(folder)
        if self.protocol is not None:
            check_protocol(folder, self.protocol, self.stream)
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(folder)
        outcome = WriteOutcome(problems=dict(self.problems))
        for video_id, problem in self.problems.items():
            self._log_skipped(video_id, problem)
        for video_id in self.videos:  # loop over videos
            target = folder / f"{video_id}.npy"
            if finished_rows(target, self.width) is not None:
                outcome.finished.append(video_id)
                continue
            started = time.perf_counter()
            try:
                features = np.asarray(self.compute(video_id), dtype=np.float32)
            except VideoError as error:
                problem = Problem.of(error, self.sources.get(video_id, Path(video_id)))
                outcome.problems[video_id] = problem
                self._log_skipped(video_id, problem)
                continue
            if features.ndim != 2 or features.shape[1] != self.width:
                raise ValueError(
                    f"{video_id}: {self.stream} features have shape {features.shape}, "
                    f"expected (chunks, {self.width})"
                )
            with atomic_path(target) as tmp:
                np.save(tmp, features)
            outcome.written.append(video_id)
            logger.info(
                "%s: %s, %d chunks in %.1f s",
                self.stream,
                video_id,
                len(features),
                time.perf_counter() - started,
            )
        if self.record_problems:
            document = {v: vars(p) for v, p in sorted(outcome.problems.items())}
            atomic_write_text(folder / PROBLEMS_FILE, json.dumps(document, indent=2) + "\n")
        return outcome


@dataclass(frozen=True)
class FeatureFolder:
    """A per-video feature folder as found: features id → `.npy` path, the recorded problems and
    protocol (None when not recorded)."""

    path: Path
    features: dict[str, Path]
    problems: dict[str, Problem]
    protocol: dict | None = None

    def rows(self, video_id: str, width: int) -> int | None:
        return finished_rows(self.features[video_id], width)


def read_feature_folder(folder: str | Path) -> FeatureFolder:
    """The `<video>.npy` files of `folder` (hidden temporaries ignored) and its `problems.json`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no feature folder yet; run the extraction first")
    features = {p.stem: p for p in sorted(_finished_files(folder))}
    problems: dict[str, Problem] = {}
    recorded = folder / PROBLEMS_FILE
    if recorded.is_file():
        try:
            problems = {v: Problem(**p) for v, p in json.loads(recorded.read_text()).items()}
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"{recorded}: not a problems file written by the extraction ({exc})"
            ) from exc
    protocol = None
    if (folder / PROTOCOL_FILE).is_file():
        try:
            protocol = json.loads((folder / PROTOCOL_FILE).read_text())
        except ValueError as exc:
            raise ValueError(f"{folder / PROTOCOL_FILE}: not a protocol record ({exc})") from exc
    return FeatureFolder(folder, features, problems, protocol)
