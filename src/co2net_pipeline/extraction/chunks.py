"""16-frame chunks and the two I3D inputs made from them: RGB clips and TV-L1 flow clips.

A video of n frames (after resampling) gives n // 16 non-overlapping chunks; the tail of
n % 16 frames is dropped (the W-TALC features: one snippet per full chunk, so 201 frames give
12 chunks and the snippet grid is 16 / fps seconds). Flow frame t is the TV-L1 flow from frame
t to frame t + 1, so n frames have n - 1 flows. Chunk k needs the flows of frames 16k .. 16k+15,
i.e. frames up to 16k + 16: the frame after the chunk is carried with it. Only when the video
ends exactly at a chunk's end (n % 16 == 0) is that frame missing; the last chunk then repeats
its 15th flow as its 16th, so RGB and flow always have the same number of chunks. Flow is never
computed for the dropped tail.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from co2net_pipeline.extraction.settings import CHUNK_FRAMES
from co2net_pipeline.extraction.video import VideoError, center_crop

__all__ = [
    "CHUNK_FRAMES",
    "FrameChunk",
    "TvL1",
    "flow_clip",
    "frame_chunks",
    "n_chunks",
    "rgb_clip",
]


def n_chunks(n_frames: int) -> int:
    """Chunks of a video of `n_frames` frames: full chunks only (the tail is dropped)."""
    return n_frames // CHUNK_FRAMES


@dataclass(frozen=True)
class FrameChunk:
    """frames: (16, H, W, 3) uint8 resized RGB frames; next_frame: (H, W, 3), the frame after
    the chunk (its last flow's target), None when the video ends with the chunk."""

    frames: np.ndarray
    next_frame: np.ndarray | None


def frame_chunks(frames: Iterable[np.ndarray]) -> Iterator[FrameChunk]:
    """Non-overlapping 16-frame chunks of `frames` ((H, W, 3) each), with the next frame.

    Holds at most 17 frames. Raises `VideoError` when there are fewer than 16 frames.
    """
    buffer: list[np.ndarray] = []
    seen = 0
    for frame in frames:
        buffer.append(frame)
        seen += 1
        if len(buffer) == CHUNK_FRAMES + 1:
            yield FrameChunk(np.stack(buffer[:CHUNK_FRAMES]), buffer[CHUNK_FRAMES])
            buffer = buffer[CHUNK_FRAMES:]
    if len(buffer) == CHUNK_FRAMES:
        yield FrameChunk(np.stack(buffer), None)
    elif seen < CHUNK_FRAMES:
        raise VideoError(
            f"too short: {seen} frames after resampling, fewer than one {CHUNK_FRAMES}-frame chunk"
        )


def rgb_clip(chunk: FrameChunk, crop_size: int) -> np.ndarray:
    """The RGB stream's input: (3, 16, crop, crop) float32 in [-1, 1] (x / 127.5 - 1)."""
    pixels = center_crop(chunk.frames, crop_size).astype(np.float32)
    return np.ascontiguousarray((pixels / 127.5 - 1.0).transpose(3, 0, 1, 2))


class TvL1:
    """OpenCV's Dual TV-L1 optical flow (opencv-contrib, default parameters) on `workers`
    threads, one solver per thread (a solver keeps state between calls; OpenCV releases the
    GIL, so frame pairs run in parallel). workers None: one per CPU core."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None

    def _flow(self, pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        solver = getattr(self._local, "solver", None)
        if solver is None:
            solver = self._local.solver = cv2.optflow.DualTVL1OpticalFlow_create()
        return solver.calc(pair[0], pair[1], None)

    def __call__(self, gray: list[np.ndarray]) -> np.ndarray:
        """gray: n (H, W) uint8 frames → (n - 1, H, W, 2) float32 flows (x, y) in pixels."""
        pairs = list(zip(gray[:-1], gray[1:], strict=True))
        flows = self._pool.map(self._flow, pairs) if self._pool else map(self._flow, pairs)
        return np.stack(list(flows))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def __enter__(self) -> TvL1:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def flow_clip(
    chunk: FrameChunk,
    crop_size: int,
    tvl1: TvL1,
    bound: float = 20.0,
    flow_before_crop: bool = True,
) -> np.ndarray:
    """The flow stream's input: (2, 16, crop, crop) float32, TV-L1 flow (x, y) of the grayscale
    frames clipped to [-bound, bound] and divided by bound.

    flow_before_crop: flow computed on the whole resized frame, then cropped (the Kinetics I3D
        preprocessing: "the same cropping as for RGB" after the flow); False computes it on the
        crop only: 1.7x fewer pixels for a 320 x 240 video, other values near the borders.
    """
    frames = list(chunk.frames) + ([] if chunk.next_frame is None else [chunk.next_frame])
    if not flow_before_crop:
        frames = [center_crop(f, crop_size) for f in frames]
    flows = tvl1([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    if chunk.next_frame is None:  # the video ends with this chunk: repeat the last flow
        flows = np.concatenate([flows, flows[-1:]])
    if flow_before_crop:
        flows = center_crop(flows, crop_size)
    flows = np.clip(flows, -bound, bound) / bound
    return np.ascontiguousarray(flows.transpose(3, 0, 1, 2), dtype=np.float32)
