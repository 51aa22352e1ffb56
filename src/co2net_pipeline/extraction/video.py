"""Video files in, frames out: probing, decoding with PyAV, resampling to a fixed rate,
resizing (shorter side) and centre cropping.

Frames are picked by presentation time, not by index: output frame i (time i / fps after the
first frame) is the last decoded frame shown at or before that time, the frame on screen then.
A variable-frame-rate video is therefore resampled by its timestamps (one WARNING line naming
it); a 30-fps video of 10 s gives 250 frames at 25 fps. A video that decodes to much less than
its header's duration (a file truncated or corrupted after a readable header) is extracted as
far as it decodes, with one WARNING line naming it.

Problems with a file are `VideoError`s naming the file, the video and the problem; the
extractor skips such a video and reports it, the others go on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from co2net_pipeline.data.errors import DataValidationError

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoError",
    "VideoInfo",
    "center_crop",
    "list_videos",
    "probe_video",
    "resampled_frames",
    "resize_short_side",
    "resized_size",
]

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm")
# Two presentation times closer than this are the same instant (rates like 30000/1001 are
# not exact in binary).
TIME_EPS = 1e-6
# Decoded frames may fall short of the header's duration by this much (a missing last frame,
# a rounded duration) before the video is reported as truncated: max(one chunk, 5 %).
SHORTFALL_FRAMES, SHORTFALL_FRACTION = 16, 0.05


class VideoError(DataValidationError):
    """A video that cannot be used: `<file> (video <id>): <problem>`."""

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else Path(path)
        where = f"{self.path} (video {self.path.stem})" if self.path is not None else "video"
        super().__init__(f"{where}: {problem}")

    def at(self, path: str | Path) -> VideoError:
        """The same problem, naming `path` (stages below the decoder do not know the file)."""
        return self if self.path is not None else VideoError(self.problem, path)


@dataclass(frozen=True)
class VideoInfo:
    """What the container header says about a video (nothing decoded).

    duration_s: None when the container does not say; average_fps: the stream's average rate.
    """

    path: Path
    width: int
    height: int
    duration_s: float | None
    average_fps: float | None

    @property
    def video_id(self) -> str:
        return self.path.stem

    def expected_frames(self, fps: float) -> int | None:
        """Frames after resampling to `fps`, estimated from the duration (None: unknown)."""
        if not self.duration_s:
            return None
        return max(0, math.ceil(self.duration_s * fps - TIME_EPS))


def list_videos(folder: str | Path, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> list[Path]:
    """The video files directly in `folder` (by extension, case-insensitive), sorted by name.

    Two files with the same stem (`a.mp4`, `a.avi`) would write the same `<video>.npy`: an error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of videos")
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in wanted and not p.name.startswith(".")
    )
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise ValueError(
                f"{folder}: {seen[path.stem].name} and {path.name} are both video "
                f"{path.stem!r} (one <video>.npy each): rename one"
            )
        seen[path.stem] = path
    return files


def probe_video(path: str | Path) -> VideoInfo:
    """The header of `path`; `VideoError` for an unreadable file or one without a video stream."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise VideoError("empty file (0 bytes)", path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["no"]
                raise VideoError(f"no video stream ({' and '.join(kinds)} streams only)", path)
            stream = container.streams.video[0]
            rate = stream.average_rate
            return VideoInfo(
                path=path,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                duration_s=_header_duration(container, stream),
                average_fps=float(rate) if rate else None,
            )
    except av.EOFError as exc:  # a header and nothing after it
        raise VideoError("no video data (zero-length or truncated file)", path) from exc
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"not a readable video ({_short(exc)})", path) from exc


def _header_duration(
    container: av.container.InputContainer, stream: av.VideoStream
) -> float | None:
    """Seconds the header announces for `stream` (else the container), None when unsaid."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _short(exc: BaseException) -> str:
    """FFmpeg's own words without the path it repeats (`strerror`), else the message."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:200]


def resampled_frames(path: str | Path, fps: float) -> Iterator[av.VideoFrame]:
    """The frames of `path` at a constant `fps`, chosen by presentation time (module docstring).

    A frame is yielded once per output instant it covers: repeated when the video is slower
    than `fps`, skipped when it is faster. Raises `VideoError` when decoding fails or no frame
    decodes. Variable frame rates and a decoded length well short of the header's are logged
    (one WARNING line each); both videos are still resampled by time like any other.
    """
    path = Path(path)
    step, count, index = 1.0 / fps, 0, 0
    previous, start, last_time, announced = None, 0.0, 0.0, None
    gaps: list[float] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError("no video stream", path)
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame-level threads: decoding is never the slow stage
            announced = _header_duration(container, stream)
            fallback = 1.0 / float(stream.average_rate or fps)
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else count * fallback
                if previous is None:
                    start = t
                else:
                    gaps.append(t - last_time)
                # emit the previous frame for every output instant before this frame's time
                while previous is not None and start + index * step < t - TIME_EPS:
                    yield previous
                    index += 1
                previous, last_time, count = frame, t, count + 1
            if previous is None:
                raise VideoError("no video frame could be decoded (zero-length video)", path)
            shown = float(previous.duration * previous.time_base) if previous.duration else 0.0
            end = last_time + (shown or (gaps[-1] if gaps else fallback))
            while start + index * step < end - TIME_EPS:
                yield previous
                index += 1
    except av.FFmpegError as exc:
        raise VideoError(f"decoding failed after {count} frames ({_short(exc)})", path) from exc
    _log_variable_rate(path, gaps)
    _log_shortfall(path, index, fps, announced)


def _log_shortfall(path: Path, frames: int, fps: float, announced: float | None) -> None:
    expected = round(announced * fps) if announced else 0
    if expected - frames > max(SHORTFALL_FRAMES, SHORTFALL_FRACTION * expected):
        logger.warning(
            "%s (video %s): decoded %.2f s of the %.2f s its header announces (truncated or "
            "corrupted?); features cover the decoded part only",
            path,
            path.stem,
            frames / fps,
            announced,
        )


def _log_variable_rate(path: Path, gaps: list[float]) -> None:
    positive = [g for g in gaps if g > 0]
    if positive and max(positive) > 1.5 * min(positive):
        logger.warning(
            "%s (video %s): variable frame rate (frame intervals %.1f to %.1f ms); resampled "
            "by presentation time",
            path,
            path.stem,
            1000 * min(positive),
            1000 * max(positive),
        )


def resized_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the shorter side `short_side` and the aspect ratio kept (rounded)."""
    scale = short_side / min(width, height)
    if width <= height:
        return short_side, max(1, round(height * scale))
    return max(1, round(width * scale)), short_side


def resize_short_side(frames: Iterable[av.VideoFrame], short_side: int) -> Iterator[np.ndarray]:
    """RGB frames (H', W', 3) uint8 with the shorter side `short_side`, bilinear (the Kinetics
    I3D preprocessing). A frame repeated by the resampler is converted once."""
    last, last_array = None, None
    for frame in frames:
        if frame is not last:
            rgb = frame.to_ndarray(format="rgb24")
            size = resized_size(rgb.shape[1], rgb.shape[0], short_side)
            last_array = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
            last = frame
        yield last_array


def center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """frames: (..., H, W, C) → (..., size, size, C), the centre (extra pixel bottom/right)."""
    height, width = frames.shape[-3], frames.shape[-2]
    if size > min(height, width):
        raise VideoError(f"crop of {size} pixels is larger than the resized frame {width}x{height}")
    top, left = (height - size) // 2, (width - size) // 2
    return frames[..., top : top + size, left : left + size, :]
