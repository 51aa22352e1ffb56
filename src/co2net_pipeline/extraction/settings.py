"""The extraction protocol's settings: a plain dataclass with the W-TALC defaults.

Kept apart from the stages (no torch, PyAV or OpenCV here), so the parameter schema, which
derives the `feature_extraction` group from it, stays light to import.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from co2net_pipeline.common.config import dataclass_from_dict

__all__ = ["CHUNK_FRAMES", "ExtractionSettings", "file_sha256"]

CHUNK_FRAMES = 16  # the W-TALC snippet: 16 frames at 25 fps = 0.64 s


@dataclass(frozen=True)
class ExtractionSettings:
    """The protocol's parameters (`feature_extraction` in conf/base, W-TALC defaults).

    fps: frames per second after resampling (25: one 16-frame snippet = 0.64 s). short_side:
    frames resized so their shorter side has this many pixels (256). crop_size: the centre
    crop both streams see (224). flow_bound: flow clipped to ±bound pixels, then divided by it
    (20). flow_before_crop: flow on the whole resized frame, then cropped (`chunks.flow_clip`).
    flow_workers: TV-L1 threads (None: one per core). device: "auto" (CUDA when present), "cpu",
    "cuda[:i]". batch_chunks: chunks per I3D forward pass. bf16: bfloat16 autocast of I3D.
    progress: a progress bar per video and stream.
    """

    fps: float = 25.0
    short_side: int = 256
    crop_size: int = 224
    flow_bound: float = 20.0
    flow_before_crop: bool = True
    flow_workers: int | None = None
    device: str = "auto"
    batch_chunks: int = 8
    bf16: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"feature_extraction.fps={self.fps}: must be > 0")
        if self.crop_size > self.short_side:
            raise ValueError(
                f"feature_extraction.crop_size={self.crop_size}: must be <= short_side="
                f"{self.short_side} (the crop is taken from the resized frame)"
            )
        if self.batch_chunks < 1:
            raise ValueError(f"feature_extraction.batch_chunks={self.batch_chunks}: must be >= 1")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ExtractionSettings:
        return dataclass_from_dict(cls, values, "feature_extraction parameter(s)")

    def protocol(self, modality: str, weights: str | Path) -> dict[str, Any]:
        """What one stream's features depend on, recorded beside them (`writer.check_protocol`):
        the sizes, the rate, bf16 and the weights' sha256. Device, batch size, threads and the
        progress bar change nothing but float rounding, so they are left out."""
        record: dict[str, Any] = {
            "stream": modality,
            "fps": self.fps,
            "chunk_frames": CHUNK_FRAMES,
            "short_side": self.short_side,
            "crop_size": self.crop_size,
        }
        if modality == "flow":
            record |= {"flow_bound": self.flow_bound, "flow_before_crop": self.flow_before_crop}
        return record | {"bf16": self.bf16, "weights_sha256": file_sha256(weights)}


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, hex (a 50 MB I3D checkpoint: ~0.1 s)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
