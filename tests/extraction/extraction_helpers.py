"""Test videos made in the tests: moving shapes encoded with PyAV, and weights by the golden
recipe saved as plain `torch.save` state dicts (the checkpoint format users bring)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from co2net_pipeline.extraction.i3d import IN_CHANNELS, InceptionI3d, recipe_state_dict

CODECS = {".mp4": "libx264", ".avi": "mpeg4", ".mkv": "mpeg4", ".webm": "libvpx"}


def moving_shapes(n_frames: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """(n, H, W, 3) uint8: a bright square and a dark disc crossing a gradient background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    background = (40 + 120 * xx / max(width - 1, 1)).astype(np.uint8)
    frames = np.repeat(background[None, :, :, None], 3, axis=3).repeat(n_frames, axis=0)
    side = max(2, min(width, height) // 5)
    speed = rng.uniform(1.0, 3.0, size=2)
    for t in range(n_frames):
        x = int(t * speed[0]) % max(width - side, 1)
        y = int(height / 3 + height / 4 * np.sin(t / 7))
        frames[t, y : y + side, x : x + side] = (230, 200, 40)
        cx, cy = width - 1 - (int(t * speed[1]) % width), height * 2 // 3
        frames[t][(xx - cx) ** 2 + (yy - cy) ** 2 < (side // 2) ** 2] = (20, 30, 160)
    return frames


def write_video(
    path: Path,
    n_frames: int,
    width: int = 64,
    height: int = 48,
    fps: int = 25,
    seed: int = 0,
    times: list[float] | None = None,
) -> Path:
    """Encode moving shapes to `path` (codec by extension); `times`: presentation times in
    seconds, for a variable frame rate (default: n_frames at a constant `fps`)."""
    frames = moving_shapes(n_frames, width, height, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODECS[path.suffix], rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = round(times[i] * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        if not n_frames:
            container.start_encoding()  # the header alone: a zero-length video
        container.mux(stream.encode())
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An .mp4 with one AAC audio stream and no video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        samples = int(44100 * seconds)
        t = np.arange(samples) / 44100
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(
                tone[:, start : start + 1024], format="fltp", layout="mono"
            )
            frame.sample_rate = 44100
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_recipe_weights(folder: Path, rgb_seed: int = 1, flow_seed: int = 3) -> tuple[Path, Path]:
    """rgb.pt and flow.pt: stand-in I3D weights by the golden recipe, as plain state dicts."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for modality, seed in (("rgb", rgb_seed), ("flow", flow_seed)):
        network = InceptionI3d(IN_CHANNELS[modality])
        path = folder / f"{modality}.pt"
        torch.save(recipe_state_dict(network, seed), path)
        paths.append(path)
    return paths[0], paths[1]
