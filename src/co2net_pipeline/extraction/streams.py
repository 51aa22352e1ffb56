"""The extraction as lazy per-video streams, one stage per step of the protocol.

`decode_videos` probes the files and returns a `VideoStreams`: for each usable video, a recipe
that decodes it when iterated. Each later stage (`resize_frames`, `chunk_frames`, `rgb_clips`,
`flow_clips`) returns a new `VideoStreams` with one more step in the recipe; nothing runs until
`stream_features` (I3D on one stream) is written, video by video, by `writer.PendingFeatures`.
So the Kedro nodes and `co2net extract` share each stage, a video's frames never all sit in
memory (17 frames at a time), and a finished video is never decoded again.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from tqdm.auto import tqdm

from co2net_pipeline.extraction.chunks import (
    CHUNK_FRAMES,
    FrameChunk,
    TvL1,
    flow_clip,
    frame_chunks,
    n_chunks,
    rgb_clip,
)
from co2net_pipeline.extraction.i3d import FEATURE_DIM, InceptionI3d
from co2net_pipeline.extraction.settings import ExtractionSettings
from co2net_pipeline.extraction.video import (
    VideoError,
    VideoInfo,
    probe_video,
    resampled_frames,
    resize_short_side,
)
from co2net_pipeline.extraction.writer import PendingFeatures, Problem

__all__ = [
    "VideoStreams",
    "chunk_frames",
    "decode_videos",
    "flow_clips",
    "resize_frames",
    "rgb_clips",
    "run_i3d",
    "select_device",
    "stream_features",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoStreams:
    """Lazy per-video streams (module docstring).

    videos: id → header of each usable video; problems: id → why a file cannot be used;
    steps: the recipe, a function of the file path then functions of the previous iterator;
    fps: the resampling rate (for the expected chunk counts of progress bars).
    """

    videos: dict[str, VideoInfo]
    problems: dict[str, Problem]
    steps: tuple[Callable[..., Iterator], ...]
    fps: float

    def then(self, step: Callable[[Iterator], Iterator]) -> VideoStreams:
        """The same videos with `step` applied to each stream."""
        return dataclasses.replace(self, steps=(*self.steps, step))

    def open(self, video_id: str) -> Iterator:
        """The stream of one video; a `VideoError` (or a decoder error) names its file."""
        path = self.videos[video_id].path
        stream = self.steps[0](path)
        for step in self.steps[1:]:
            stream = step(stream)
        try:
            yield from stream
        except VideoError as error:
            raise error.at(path) from error
        except av.FFmpegError as exc:
            raise VideoError(f"decoding failed ({exc})", path) from exc

    def expected_chunks(self, video_id: str) -> int | None:
        frames = self.videos[video_id].expected_frames(self.fps)
        return None if frames is None else n_chunks(frames)


def decode_videos(files: Sequence[Path], fps: float) -> VideoStreams:
    """Probe `files` (headers only) and return their decoding at `fps` as lazy streams of
    `av.VideoFrame`; unreadable files, files without a video stream and empty files are
    `problems`. A header that announces less than one chunk is a problem too."""
    videos: dict[str, VideoInfo] = {}
    problems: dict[str, Problem] = {}
    for path in files:  # loop over videos
        try:
            info = probe_video(path)
        except VideoError as error:
            problems[path.stem] = Problem.of(error, path)
            continue
        frames = info.expected_frames(fps)
        if frames is not None and frames < CHUNK_FRAMES:
            problems[path.stem] = Problem(
                str(path),
                f"too short: {info.duration_s:.2f} s is {frames} frames at {fps:g} fps, "
                f"fewer than one {CHUNK_FRAMES}-frame chunk",
            )
            continue
        videos[path.stem] = info
    return VideoStreams(videos, problems, (partial(resampled_frames, fps=fps),), fps)


def resize_frames(streams: VideoStreams, short_side: int) -> VideoStreams:
    """Frames (H', W', 3) uint8 RGB with the shorter side `short_side`."""
    return streams.then(partial(resize_short_side, short_side=short_side))


def chunk_frames(streams: VideoStreams) -> VideoStreams:
    """Non-overlapping 16-frame `FrameChunk`s (the tail dropped; `chunks` module)."""
    return streams.then(frame_chunks)


def _map(function: Callable[[Any], Any], items: Iterable) -> Iterator:
    return (function(item) for item in items)


def rgb_clips(streams: VideoStreams, crop_size: int) -> VideoStreams:
    """RGB clips (3, 16, crop, crop) float32 in [-1, 1], one per chunk."""
    return streams.then(partial(_map, partial(rgb_clip, crop_size=crop_size)))


def _flow_stream(
    chunks: Iterable[FrameChunk],
    crop_size: int,
    bound: float,
    before_crop: bool,
    workers: int | None,
) -> Iterator[np.ndarray]:
    with TvL1(workers) as tvl1:  # one thread pool per video, closed when its stream ends
        for chunk in chunks:
            yield flow_clip(chunk, crop_size, tvl1, bound, before_crop)


def flow_clips(
    streams: VideoStreams,
    crop_size: int,
    bound: float = 20.0,
    before_crop: bool = True,
    workers: int | None = None,
) -> VideoStreams:
    """TV-L1 flow clips (2, 16, crop, crop) float32 in [-1, 1], one per chunk."""
    return streams.then(
        partial(
            _flow_stream, crop_size=crop_size, bound=bound, before_crop=before_crop, workers=workers
        )
    )


def select_device(name: str = "auto") -> torch.device:
    """ "auto": CUDA when present, else the CPU; otherwise the named device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"feature_extraction.device={name!r}: CUDA is not available")
    return device


def run_i3d(
    clips: Iterable[np.ndarray],
    network: InceptionI3d,
    device: torch.device,
    batch_chunks: int = 8,
    bf16: bool = False,
) -> np.ndarray:
    """clips: (C, 16, H, W) float32 each → (n_clips, 1024) float32, `batch_chunks` per pass."""
    network = network.eval().to(device)
    out: list[np.ndarray] = []
    batch: list[np.ndarray] = []

    def forward() -> None:
        x = torch.from_numpy(np.stack(batch)).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out.append(network(x).float().cpu().numpy())
        batch.clear()

    with torch.inference_mode():
        for clip in clips:
            batch.append(clip)
            if len(batch) == batch_chunks:
                forward()
        if batch:
            forward()
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)


def stream_features(
    streams: VideoStreams,
    network: InceptionI3d,
    modality: str,
    settings: ExtractionSettings,
    protocol: dict | None = None,
) -> PendingFeatures:
    """I3D features of one stream, (chunks, 1024) per video, computed when written; `protocol`
    (`ExtractionSettings.protocol`) is recorded in and checked against the folder."""
    device = select_device(settings.device)

    def compute(video_id: str) -> np.ndarray:
        clips = tqdm(
            streams.open(video_id),
            total=streams.expected_chunks(video_id),
            desc=f"{modality} {video_id}",
            unit="chunk",
            disable=not settings.progress,
            leave=False,
        )
        return run_i3d(clips, network, device, settings.batch_chunks, settings.bf16)

    return PendingFeatures(
        videos=list(streams.videos),
        sources={v: info.path for v, info in streams.videos.items()},
        compute=compute,
        width=FEATURE_DIM,
        problems=streams.problems,
        stream=modality,
        protocol=protocol,
    )
