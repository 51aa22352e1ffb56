"""Speed of feature extraction per stage: seconds per minute of 25-fps video.

Encodes a short moving-shapes video (default 2 s, 320 x 240 at 30 fps: THUMOS14's usual size),
then times each stage of the protocol at its default sizes (resize 256, crop 224):

- decode: PyAV decoding, resampling to 25 fps, resizing, 16-frame chunking (the whole video);
- flow: TV-L1 optical flow of `--flow-chunks` chunks (16 frame pairs each) on `--flow-workers`
  threads, with clipping and cropping (CPU only: opencv-contrib's TV-L1);
- I3D RGB and I3D flow: the two networks on the video's chunks, on the CPU and on CUDA when
  present (stand-in recipe weights: the cost does not depend on the values).

Each time is extrapolated linearly to one minute of 25-fps video (1,500 frames, 1,500 flow
pairs, 93.75 chunks) and to a THUMOS14-sized set (about 24 h of video). Prints a table.

    .venv/bin/python benchmarks/extraction_speed.py [--seconds 2] [--flow-chunks 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from co2net_pipeline.extraction.chunks import CHUNK_FRAMES, TvL1, flow_clip, frame_chunks, rgb_clip
from co2net_pipeline.extraction.i3d import IN_CHANNELS, InceptionI3d, recipe_state_dict
from co2net_pipeline.extraction.streams import run_i3d
from co2net_pipeline.extraction.video import resampled_frames, resize_short_side

FPS = 25.0
FRAMES_PER_MINUTE = 60 * FPS
CHUNKS_PER_MINUTE = FRAMES_PER_MINUTE / CHUNK_FRAMES
THUMOS14_MINUTES = 24 * 60  # about 24 h of video over its 413 validation + test videos


def write_video(path: Path, seconds: float, width: int, height: int, fps: int) -> Path:
    """A panning texture with a moving square and sensor noise, encoded with libx264.

    TV-L1's time depends on the content (it iterates until the flow converges): flat shapes
    converge several times faster than textured, noisy frames, which behave like camera video.
    """
    rng = np.random.default_rng(0)
    n = round(seconds * fps)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (height, width + n)), (0, 0), 2.0)
    texture = 40 + 170 * (texture - texture.min()) / np.ptp(texture)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        side = height // 4
        for t in range(n):
            gray = texture[:, t : t + width] + rng.normal(0, 3, (height, width))
            image = np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
            x = (3 * t) % (width - side)
            image[height // 3 : height // 3 + side, x : x + side] = (230, 200, 40)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def timed(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def network(modality: str, device: torch.device) -> InceptionI3d:
    net = InceptionI3d(IN_CHANNELS[modality])
    net.load_state_dict(recipe_state_dict(net, 1))
    return net.eval().to(device)


def measure(args: argparse.Namespace, video: Path) -> list[tuple[str, str, float, float]]:
    """(stage, device, measured seconds, seconds per minute of 25-fps video) per row."""
    rows = []
    seconds, chunks = timed(
        lambda: list(frame_chunks(resize_short_side(resampled_frames(video, FPS), args.short_side)))
    )
    n_frames = len(chunks) * CHUNK_FRAMES
    rows.append(
        ("decode + resample + resize", "cpu", seconds, seconds / n_frames * FRAMES_PER_MINUTE)
    )
    with TvL1(args.flow_workers) as tvl1:
        flow_chunks = chunks[: args.flow_chunks]
        seconds, _ = timed(lambda: [flow_clip(c, args.crop_size, tvl1) for c in flow_chunks])
    pairs = len(flow_chunks) * CHUNK_FRAMES
    label = f"TV-L1 flow ({tvl1.workers} thread{'s' * (tvl1.workers > 1)})"
    rows.append((label, "cpu", seconds, seconds / pairs * FRAMES_PER_MINUTE))
    clips = {
        "rgb": [rgb_clip(c, args.crop_size) for c in chunks],
        "flow": [np.zeros((2, CHUNK_FRAMES, args.crop_size, args.crop_size), np.float32)]
        * len(chunks),
    }
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        for modality in ("rgb", "flow"):
            seconds = time_i3d(
                clips[modality], network(modality, device), device, args.batch_chunks
            )
            per_minute = seconds / len(chunks) * CHUNKS_PER_MINUTE
            rows.append((f"I3D {modality.upper()}", device.type, seconds, per_minute))
    return rows


def time_i3d(clips: list[np.ndarray], net: InceptionI3d, device: torch.device, batch: int) -> float:
    """Seconds of `run_i3d` on `clips`, after a one-clip warm-up (kernel selection, caches)."""
    run_i3d(clips[:1], net, device, batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds, _ = timed(lambda: run_i3d(clips, net, device, batch))
    return seconds


def table(rows: list[tuple[str, str, float, float]]) -> str:
    cpu_total = sum(r[3] for r in rows if r[1] == "cpu")
    lines = [
        "| stage | device | measured s | s per minute of video | share of CPU total |",
        "|---|---|---:|---:|---:|",
    ]
    for stage, device, seconds, per_minute in rows:
        share = f"{100 * per_minute / cpu_total:.0f} %" if device == "cpu" else ""
        lines.append(f"| {stage} | {device} | {seconds:.2f} | {per_minute:.1f} | {share} |")
    lines.append(f"| all stages, CPU only | cpu | | {cpu_total:.1f} | 100 % |")
    if any(r[1] == "cuda" for r in rows):
        gpu_total = sum(r[3] for r in rows if r[1] == "cuda" or not r[0].startswith("I3D"))
        lines.append(f"| decode + flow on CPU, I3D on CUDA | cuda | | {gpu_total:.1f} | |")
    hours = cpu_total * THUMOS14_MINUTES / 3600
    lines += [
        "",
        f"CPU only: {cpu_total / 60:.1f} min per minute of video; a THUMOS14-sized set "
        f"(~24 h of video) would take ~{hours:.0f} h ({hours / 24:.1f} days).",
    ]
    return "\n".join(lines)


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), {gpu}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the test video")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--input-fps", type=int, default=30)
    parser.add_argument("--short-side", type=int, default=256)
    parser.add_argument("--crop-size", type=int, default=224)
    parser.add_argument("--flow-chunks", type=int, default=1, help="chunks whose flow is timed")
    parser.add_argument("--flow-workers", type=int, default=None, help="default: CPU cores")
    parser.add_argument("--batch-chunks", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(
            Path(tmp) / "bench.mp4", args.seconds, args.width, args.height, args.input_fps
        )
        rows = measure(args, video)
    print(f"feature extraction speed: {machine()}")
    print(
        f"{args.seconds:g} s of {args.width}x{args.height} video at {args.input_fps} fps, resized "
        f"to a short side of {args.short_side}, crop {args.crop_size}; times extrapolated "
        f"linearly to one minute of 25-fps video ({FRAMES_PER_MINUTE:.0f} frames, "
        f"{CHUNKS_PER_MINUTE:.2f} chunks)\n"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
