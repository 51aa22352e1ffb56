"""Small datasets written in each input format, for the data-layer tests.

A plain module (not conftest) so that tests can import it by a name no other test folder uses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from co2net_pipeline.data.annotations import Annotations, save_wtalc_annotations

FEATURE_DIM = 3  # channels per modality in the small datasets


def make_annotations(name: str = "Tiny") -> Annotations:
    """Four videos (2 train, 2 test), two classes, durations giving T = 16, 25, 12, 20 snippets."""
    videos = pd.DataFrame(
        {
            "video_id": ["vid_a", "vid_b", "vid_c", "vid_d"],
            "subset": ["validation", "validation", "test", "test"],
            "duration_s": [10.24, 16.0, 7.68, 12.8],
            "labels": [["Jump"], ["Run"], ["Jump", "Run"], ["Run"]],
        }
    )
    segments = pd.DataFrame(
        [
            ("vid_a", 1.0, 3.0, "Jump"),
            ("vid_a", 5.0, 6.5, "Jump"),
            ("vid_b", 2.0, 9.0, "Run"),
            ("vid_c", 0.5, 2.5, "Jump"),
            ("vid_c", 4.0, 6.0, "Run"),
            ("vid_d", 3.0, 8.0, "Run"),
        ],
        columns=["video_id", "t_start_s", "t_end_s", "label"],
    )
    ambiguous = pd.DataFrame({"video_id": ["vid_c"], "t_start_s": [6.0], "t_end_s": [7.0]})
    return Annotations(name, ["Jump", "Run"], videos, segments, ambiguous)


def make_features(
    annotations: Annotations, dim: int = FEATURE_DIM, seed: int = 0
) -> dict[str, np.ndarray]:
    """{video_id: float32 (T, 2·dim)} with T = round(duration·25/16)."""
    rng = np.random.default_rng(seed)
    out = {}
    for vid, dur in zip(
        annotations.videos["video_id"], annotations.videos["duration_s"], strict=True
    ):
        n = int(round(dur * 25 / 16))
        out[vid] = rng.standard_normal((n, 2 * dim)).astype(np.float32)
    return out


def object_array(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def write_wtalc(
    folder: Path, annotations: Annotations, features: dict | list, name: str = "Tiny"
) -> Path:
    """W-TALC layout; `features` as a dict (annotation order) or a list of entries (written as is)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_wtalc_annotations(annotations, folder / f"{name}-Annotations")
    entries = (
        [features[v] for v in annotations.videos["video_id"]]
        if isinstance(features, dict)
        else features
    )
    np.save(folder / f"{name}-I3D-JOINTFeatures.npy", object_array(entries), allow_pickle=True)
    return folder


def annotations_json(annotations: Annotations) -> dict:
    database = {}
    for row in annotations.videos.itertuples():
        segs = annotations.segments[annotations.segments["video_id"] == row.video_id]
        database[row.video_id] = {
            "subset": row.subset,
            "duration": row.duration_s,
            "annotations": [
                {"segment": [s, e], "label": lab}
                for s, e, lab in zip(segs["t_start_s"], segs["t_end_s"], segs["label"], strict=True)
            ],
        }
    return {"database": database}


def write_json(path: Path, annotations: Annotations) -> Path:
    path.write_text(json.dumps(annotations_json(annotations)))
    return path


def write_npy_folder(folder: Path, features: dict, split: bool = False) -> Path:
    """`<folder>/<vid>.npy`, or rgb/ and flow/ halves when `split`."""
    folder.mkdir(parents=True, exist_ok=True)
    for vid, array in features.items():
        if split:
            d = array.shape[1] // 2
            for sub, part in (("rgb", array[:, :d]), ("flow", array[:, d:])):
                (folder / sub).mkdir(exist_ok=True)
                np.save(folder / sub / f"{vid}.npy", part)
        else:
            np.save(folder / f"{vid}.npy", array)
    return folder


def write_hdf5(path: Path, features: dict, split: bool = False) -> Path:
    import h5py

    with h5py.File(path, "w") as fh:
        for vid, array in features.items():
            if split:
                d = array.shape[1] // 2
                group = fh.create_group(vid)
                group["rgb"] = array[:, :d]
                group["flow"] = array[:, d:]
            else:
                fh[vid] = array
    return path


def leftover_temp_files(*roots: Path) -> list[Path]:
    """Temporary files an atomic writer should never leave behind."""
    return [
        p
        for root in roots
        if root.exists()
        for p in root.rglob("*")
        if ".tmp-" in p.name or ".old-" in p.name
    ]
