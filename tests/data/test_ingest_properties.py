"""Property: on malformed inputs ingestion yields a clean store or a ValueError — never anything
else, and never a partial or temporary file."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from data_helpers import leftover_temp_files, object_array, write_hdf5, write_json, write_npy_folder
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from co2net_pipeline.data.annotations import Annotations, save_wtalc_annotations
from co2net_pipeline.data.ingest import ingest
from co2net_pipeline.data.store import FeatureStore

IDS = ["v0", "v1", "v2", "v3"]
CLASSES = ["A", "B"]


@st.composite
def feature_arrays(draw, wild: bool):
    """(T, 4) floats, ints or float16; when `wild`, also odd widths, other ranks, empty, bools, NaN/inf."""
    kinds = ["good", "good", "good", "int", "f16"]
    if wild:
        kinds += ["width", "rank", "empty", "bool", "nonfinite"]
    kind = draw(st.sampled_from(kinds))
    n = draw(st.integers(1, 6))
    values = draw(st.lists(st.floats(-5, 5, width=32), min_size=n * 4, max_size=n * 4))
    array = np.asarray(values, dtype=np.float32).reshape(n, 4)
    if kind == "width":
        array = array[:, : draw(st.sampled_from([0, 1, 3]))]
    elif kind == "rank":
        array = array.reshape(-1) if draw(st.booleans()) else array[None]
    elif kind == "empty":
        array = array[:0]
    elif kind == "bool":
        array = array > 0
    elif kind == "int":
        array = (array * 10).astype(np.int16)
    elif kind == "nonfinite":
        array = array.copy()
        array[draw(st.integers(0, n - 1)), draw(st.integers(0, 3))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf])
        )
    elif kind == "f16":
        array = array.astype(np.float16)
    return array


@st.composite
def datasets(draw):
    """Half the cases are well-formed (warnings allowed); the rest break one or more things."""
    broken = set(draw(st.lists(st.sampled_from(["ids", "labels", "times", "arrays"]), max_size=3)))
    if draw(st.booleans()):
        broken = set()
    labels_pool = CLASSES + (["Z"] if "labels" in broken else [])
    annotated = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=4, unique=True))
    with_features = list(annotated)
    if "ids" in broken:
        annotated = annotated + draw(st.lists(st.sampled_from(IDS), max_size=2))  # may duplicate
        with_features = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=4, unique=True))
    starts, ends = [0.0, 0.5, 1.0, 3.0], [0.0, 0.8, 2.0, 5.0]  # includes start ≥ end, past duration
    if "times" in broken:
        starts, ends = starts + [np.nan], ends + [np.inf]
    videos, segments = [], []
    for vid in annotated:
        duration = draw(st.sampled_from([0.64, 2.56, 3.2, np.nan, -1.0]))  # bad durations only warn
        labels = draw(st.lists(st.sampled_from(labels_pool), max_size=2, unique=True))
        videos.append((vid, draw(st.sampled_from(["validation", "test"])), duration, labels))
        for _ in range(draw(st.integers(0, 2))):
            label = draw(st.sampled_from(labels_pool))
            segments.append(
                (vid, draw(st.sampled_from(starts)), draw(st.sampled_from(ends)), label)
            )
    annotations = Annotations(
        "Prop",
        CLASSES,
        pd.DataFrame(videos, columns=["video_id", "subset", "duration_s", "labels"]),
        pd.DataFrame(segments, columns=["video_id", "t_start_s", "t_end_s", "label"]),
    )
    features = {vid: draw(feature_arrays("arrays" in broken)) for vid in with_features}
    fmt = draw(st.sampled_from(["wtalc", "npy-folder", "hdf5"]))
    split = draw(st.booleans())
    return annotations, features, fmt, split


def _write_inputs(root: Path, annotations: Annotations, features: dict, fmt: str, split: bool):
    if fmt == "wtalc":
        save_wtalc_annotations(annotations, root / "raw" / "Prop-Annotations")
        # Aligned by position: entries follow the feature dict, not the annotation order.
        entries = object_array(list(features.values()))
        np.save(root / "raw" / "Prop-I3D-JOINTFeatures.npy", entries, allow_pickle=True)
        return root / "raw", None
    ann = write_json(root / "gt.json", annotations)
    if fmt == "npy-folder":
        return write_npy_folder(root / "raw", features, split=split and _splittable(features)), ann
    return write_hdf5(root / "feats.h5", features, split=split and _splittable(features)), ann


def _splittable(features: dict) -> bool:
    return all(a.ndim == 2 and a.shape[1] % 2 == 0 for a in features.values())


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(datasets())
def test_ingest_is_clean_or_a_value_error(case):
    annotations, features, fmt, split = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        features_path, ann_path = _write_inputs(root, annotations, features, fmt, split)
        outputs = {
            "store_path": root / "out" / "s.h5",
            "tables_dir": root / "out",
            "report_dir": root / "out",
        }
        try:
            result = ingest(features_path, ann_path, fmt=fmt, dataset_name="Prop", **outputs)
        except ValueError as exc:  # DataValidationError included
            event(f"rejected: {type(exc).__name__}")
            assert str(exc) and "\n" not in str(exc)  # one line, for the user
            assert not (root / "out").exists()  # nothing written, not even a temp file
        else:
            event("clean store")
            with FeatureStore(result.store_path) as store:
                assert store.video_ids == result.videos["video_id"].tolist()
                for vid in store.video_ids:
                    out = store[vid]
                    assert out.dtype == np.float32 and np.isfinite(out).all()
                    assert out.shape == (store.lengths[vid], 2 * store.feature_dim)
                    if fmt != "wtalc":  # wtalc ids come from position, not from the dict
                        np.testing.assert_array_equal(
                            out, np.asarray(features[vid], dtype=np.float32)
                        )
            assert all(p.is_file() for p in result.paths.values())
        assert leftover_temp_files(root) == []
