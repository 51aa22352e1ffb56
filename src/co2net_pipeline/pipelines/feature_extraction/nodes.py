"""Feature extraction: a folder of videos → W-TALC-format two-stream I3D features per video.

Each node is one stage of the protocol (`co2net_pipeline.extraction`). The frame stages return
lazy per-video streams (`extraction.streams.VideoStreams`): nothing is decoded until an I3D
stream's features are written, one video at a time, by the catalog's per-video folders.
"""

from __future__ import annotations

import logging
from pathlib import Path

from co2net_pipeline.extraction.folders import (
    check_weights,
    i3d_features,
    join_streams,
    report_markdown,
    settings_flow_clips,
)
from co2net_pipeline.extraction.settings import ExtractionSettings
from co2net_pipeline.extraction.streams import (
    VideoStreams,
    chunk_frames,
    decode_videos,
    resize_frames,
    rgb_clips,
)
from co2net_pipeline.extraction.writer import FeatureFolder, PendingFeatures
from co2net_pipeline.params.schema import parse_config, parse_group

logger = logging.getLogger(__name__)


def _settings(params: dict) -> ExtractionSettings:
    return parse_config("feature_extraction", params)


def decode_and_resample(raw_videos: list[Path], params: dict) -> VideoStreams:
    """The videos decoded with PyAV and resampled to `fps` by presentation time (lazy).

    First node of the pipeline: both I3D weight files are checked here, so a missing one stops
    the run before any video is opened. Unreadable, empty, audio-only and too short files are
    recorded as problems (the report lists them); the others go on.
    """
    settings = parse_group("feature_extraction", params)
    check_weights(settings.rgb_weights, settings.flow_weights)
    streams = decode_videos(raw_videos, settings.fps)
    logger.info(
        "feature extraction: %d videos, %d unusable, at %g fps",
        len(raw_videos),
        len(streams.problems),
        settings.fps,
    )
    return streams


def resize(resampled_frames: VideoStreams, params: dict) -> VideoStreams:
    """Frames (H', W', 3) uint8 RGB resized to a shorter side of `short_side`, bilinear (lazy)."""
    return resize_frames(resampled_frames, _settings(params).short_side)


def chunk(resized_frames: VideoStreams) -> VideoStreams:
    """Non-overlapping 16-frame chunks, each with the frame after it (its last flow's target);
    the tail shorter than a chunk is dropped (lazy)."""
    return chunk_frames(resized_frames)


def make_rgb_clips(frame_chunks: VideoStreams, params: dict) -> VideoStreams:
    """RGB clips (3, 16, crop, crop) in [-1, 1], centre-cropped (lazy)."""
    return rgb_clips(frame_chunks, _settings(params).crop_size)


def make_flow_clips(frame_chunks: VideoStreams, params: dict) -> VideoStreams:
    """TV-L1 flow clips (2, 16, crop, crop), clipped to ±flow_bound and scaled to [-1, 1] (lazy)."""
    return settings_flow_clips(frame_chunks, _settings(params))


def _stream_features(clips: VideoStreams, params: dict, modality: str) -> PendingFeatures:
    group = parse_group("feature_extraction", params)
    return i3d_features(clips, modality, getattr(group, f"{modality}_weights"), group.config())


def extract_rgb_features(rgb_clips: VideoStreams, params: dict) -> PendingFeatures:
    """I3D RGB features (chunks, 1024) per video, computed as the catalog writes them; the
    folder's recorded protocol is checked first (`extraction.writer.check_protocol`)."""
    return _stream_features(rgb_clips, params, "rgb")


def extract_flow_features(flow_clips: VideoStreams, params: dict) -> PendingFeatures:
    """I3D flow features (chunks, 1024) per video, computed as the catalog writes them; the
    folder's recorded protocol is checked first (`extraction.writer.check_protocol`)."""
    return _stream_features(flow_clips, params, "flow")


def concatenate_streams(
    rgb_i3d_features: FeatureFolder, flow_i3d_features: FeatureFolder, raw_videos: list[Path]
) -> tuple[PendingFeatures, dict, str]:
    """(chunks, 2048) per video of `raw_videos`, RGB first (the W-TALC JOINT layout), and the
    report of each with its status, chunks and, when skipped, the file and problem (videos of
    the stream folders from other runs are left out of both)."""
    only = [path.stem for path in raw_videos]
    pending, report = join_streams(rgb_i3d_features, flow_i3d_features, only)
    markdown = report_markdown(report)
    if report["n_skipped"]:
        logger.warning("feature extraction: %d videos skipped\n%s", report["n_skipped"], markdown)
    return pending, report, markdown
