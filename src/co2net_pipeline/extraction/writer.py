"""Per-video feature folders: `<folder>/<video>.npy` written one video at a time, atomically.

A video whose file is already there (a complete array: every write is a temporary file renamed
into place) is skipped, so an interrupted run resumes with the video it was on and a second run
does no work. A video that cannot be used is reported (`problems`) and the others go on.
Temporary files left by a killed run are removed when their process is gone.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from co2net_pipeline.common.atomic import atomic_path, atomic_write_text
from co2net_pipeline.extraction.video import VideoError

__all__ = [
    "PROBLEMS_FILE",
    "FeatureFolder",
    "PendingFeatures",
    "Problem",
    "WriteOutcome",
    "finished_rows",
    "read_feature_folder",
]

logger = logging.getLogger(__name__)

# Stream folders (not the final one, which holds only `<video>.npy` for feature_ingestion)
# keep the videos they could not extract, with the reason, for the report.
PROBLEMS_FILE = "problems.json"
_TEMP = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]+\.npy$")


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


def _remove_stale_temporaries(folder: Path) -> None:
    """Temporary files of writers that no longer run (a killed extraction)."""
    for path in folder.glob(".*.npy"):
        match = _TEMP.match(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except PermissionError:  # another user's live process
            continue


@dataclass
class PendingFeatures:
    """Per-video features computed when written (the datasets' `save` calls `write`).

    videos: the ids to write, in order; sources: id → video file (for messages);
    compute: id → (chunks, width) float32 array (may raise `VideoError`); width: columns;
    problems: videos already known to be unusable (their files could not be opened);
    stream: "rgb", "flow" or "joint", for the log; record_problems: keep `problems.json`.
    """

    videos: Sequence[str]
    sources: Mapping[str, Path]
    compute: Callable[[str], np.ndarray]
    width: int
    problems: Mapping[str, Problem] = field(default_factory=dict)
    stream: str = "features"
    record_problems: bool = True

    def write(self, folder: str | Path) -> WriteOutcome:
        """Write `<folder>/<video>.npy` for every video not finished there; returns what it did."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(folder)
        outcome = WriteOutcome(problems=dict(self.problems))
        for video_id, problem in self.problems.items():
            logger.warning(
                "%s: skipped %s (video %s): %s",
                self.stream,
                problem.file,
                video_id,
                problem.problem,
            )
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
                logger.warning(
                    "%s: skipped %s (video %s): %s",
                    self.stream,
                    problem.file,
                    video_id,
                    problem.problem,
                )
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
    """A per-video feature folder as found: features id → `.npy` path, and the recorded problems."""

    path: Path
    features: dict[str, Path]
    problems: dict[str, Problem]

    def rows(self, video_id: str, width: int) -> int | None:
        return finished_rows(self.features[video_id], width)


def read_feature_folder(folder: str | Path) -> FeatureFolder:
    """The `<video>.npy` files of `folder` (hidden temporaries ignored) and its `problems.json`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no feature folder yet; run the extraction first")
    features = {p.stem: p for p in sorted(folder.glob("*.npy")) if not p.name.startswith(".")}
    problems: dict[str, Problem] = {}
    recorded = folder / PROBLEMS_FILE
    if recorded.is_file():
        try:
            problems = {v: Problem(**p) for v, p in json.loads(recorded.read_text()).items()}
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"{recorded}: not a problems file written by the extraction ({exc})"
            ) from exc
    return FeatureFolder(folder, features, problems)
