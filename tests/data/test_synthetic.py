"""The synthetic generator: real annotations, deterministic, fast, learnable-but-noisy signal."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pandas as pd
import pytest

from co2net_pipeline.data.annotations import (
    expected_snippets,
    load_shipped_annotations,
    load_wtalc_annotations,
    shipped_annotations_dir,
)
from co2net_pipeline.data.formats import open_feature_source
from co2net_pipeline.data.safe_npy import load_npy
from co2net_pipeline.data.synthetic import (
    SyntheticParams,
    _class_model,
    _dataset_layout,
    generate_features,
    select_subset,
    synthesize_command,
    write_wtalc_dataset,
)


@pytest.fixture(scope="module")
def thumos():
    return load_shipped_annotations("thumos14")


def _digest(features: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for f in features:
        h.update(f.tobytes())
    return h.hexdigest()


def test_default_set_shapes_and_speed(thumos):
    started = time.perf_counter()
    features = generate_features(thumos, SyntheticParams())
    elapsed = time.perf_counter() - started
    assert elapsed < 15  # ~1 s on one core; generous for loaded CI machines
    assert len(features) == 412
    lengths = np.maximum(expected_snippets(thumos.videos["duration_s"].to_numpy()), 1)
    assert [f.shape for f in features] == [(int(n), 64) for n in lengths]
    assert all(f.dtype == np.float32 and np.isfinite(f).all() for f in features)
    # Sane scale: standardised-ish features, not exploding.
    assert 0.5 < float(np.concatenate(features).std()) < 5


def test_deterministic_per_seed_and_independent_of_subset(thumos):
    small = SyntheticParams(feature_dim=8, seed=3)
    test_only, _ = select_subset(thumos, ["test"])
    a = generate_features(test_only, small)
    b = generate_features(test_only, small)
    assert _digest(a) == _digest(b)
    assert _digest(generate_features(test_only, SyntheticParams(feature_dim=8, seed=4))) != _digest(
        a
    )
    # A video's features do not depend on which other videos are generated, nor their order.
    everything = generate_features(thumos, small)
    offset = int((thumos.videos["subset"] == "validation").sum())
    assert all(np.array_equal(x, y) for x, y in zip(a, everything[offset:], strict=True))
    rev = type(thumos)(
        thumos.name,
        thumos.classlist,
        test_only.videos.iloc[::-1].reset_index(drop=True),
        test_only.segments,
    )
    assert all(
        np.array_equal(x, y) for x, y in zip(generate_features(rev, small)[::-1], a, strict=True)
    )


def _auc(x: np.ndarray, y: np.ndarray) -> float:
    ranks = pd.Series(np.concatenate([x, y])).rank().to_numpy()
    return float((ranks[: len(x)].sum() - len(x) * (len(x) + 1) / 2) / (len(x) * len(y)))


def test_signal_is_learnable_but_not_trivial(thumos):
    """Snippets inside a class's segments vs background (> 2 s away): the oracle projection on the
    class signature separates them well (learnable), no single channel does (the signal is spread
    over a subset of channels), and per active channel the shift is comparable to the spread."""
    params = SyntheticParams()
    subset, _ = select_subset(thumos, ["validation"])
    features = generate_features(subset, params)
    action, _, _ = _dataset_layout(params)
    for cls in ["Billiards", "Diving", "HammerThrow"]:
        sig = _class_model(cls, params, action).signature
        inside, outside = [], []
        for feats, vid in zip(features, subset.videos["video_id"], strict=True):
            segs = subset.segments[
                (subset.segments["video_id"] == vid) & (subset.segments["label"] == cls)
            ]
            if segs.empty:
                continue
            t = (np.arange(len(feats)) + 0.5) * 16 / 25
            mask = np.zeros(len(feats), bool)
            near = np.zeros(len(feats), bool)
            for s, e in zip(segs["t_start_s"], segs["t_end_s"], strict=True):
                mask |= (t >= s) & (t < e)
                near |= (t >= s - 2) & (t < e + 2)
            inside.append(feats[mask])
            outside.append(feats[~near])
        x, y = np.concatenate(inside), np.concatenate(outside)
        assert _auc(x @ sig, y @ sig) > 0.95, cls
        best_channel = max(abs(_auc(x[:, j], y[:, j]) - 0.5) + 0.5 for j in range(x.shape[1]))
        assert best_channel < 0.96, cls
        active = sig != 0
        shift = (x.mean(0) - y.mean(0))[active] / y.std(0)[active]
        assert 0.5 < float(np.median(shift)) < 2.0, cls


def test_irrelevant_channels_are_shared_across_modalities(thumos):
    params = SyntheticParams(feature_dim=16, n_irrelevant=4)
    subset, _ = select_subset(thumos, ["validation"])
    x = np.concatenate(generate_features(subset, params))
    _, columns, _ = _dataset_layout(params)
    rgb, flow = columns[:4], columns[4:]
    corr = [abs(np.corrcoef(x[:, r], x[:, f])[0, 1]) for r, f in zip(rgb, flow, strict=True)]
    assert min(corr) > 0.3
    action = np.setdiff1d(np.arange(16), rgb)
    assert abs(np.corrcoef(x[:, action[0]], x[:, 16 + action[0]])[0, 1]) < min(corr)


def test_params_from_dict():
    assert SyntheticParams.from_dict({"feature_dim": 8, "subset": "test"}).subset == ["test"]
    with pytest.raises(ValueError, match=r"unknown synthetic parameter\(s\) \['noise'\]"):
        SyntheticParams.from_dict({"noise": 1.0})
    with pytest.raises(ValueError, match="signal_channels must be in"):
        SyntheticParams(feature_dim=8, n_irrelevant=2, signal_channels=7)
    with pytest.raises(ValueError, match="drift_timescale must be > 0"):
        SyntheticParams(drift_timescale=0)
    assert SyntheticParams.from_dict(SyntheticParams(seed=5).to_dict()) == SyntheticParams(seed=5)


def test_synthesize_command_writes_a_readable_wtalc_set(tmp_path, thumos, capsys):
    out = tmp_path / "synthetic"
    assert synthesize_command(out, "Thumos14reduced", {"feature_dim": 8, "seed": 1}) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed and "412 videos" in printed
    source, ann = open_feature_source(out, "wtalc")
    assert ann.name == "Thumos14reduced"
    real = load_wtalc_annotations(shipped_annotations_dir("thumos14"), name="Thumos14reduced")
    pd.testing.assert_frame_equal(ann.videos, real.videos)
    pd.testing.assert_frame_equal(ann.segments, real.segments)
    pd.testing.assert_frame_equal(ann.ambiguous, real.ambiguous)
    assert ann.classlist == real.classlist
    read = dict(source.iter_features())
    expected = generate_features(real, SyntheticParams(feature_dim=8, seed=1))
    assert all(
        np.array_equal(read[v], e) for v, e in zip(real.videos["video_id"], expected, strict=True)
    )
    # Same seed again: the same bytes on disk.
    first = (out / "Thumos14reduced-I3D-JOINTFeatures.npy").read_bytes()
    assert synthesize_command(out, "thumos14", {"feature_dim": 8, "seed": 1}) == 0
    assert (out / "Thumos14reduced-I3D-JOINTFeatures.npy").read_bytes() == first
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]


def test_synthesize_subset_restricts_the_annotation_files(tmp_path):
    out = tmp_path / "syn"
    synthesize_command(out, "Thumos14reduced", {"feature_dim": 4, "subset": ["validation"]})
    ann_dir = out / "Thumos14reduced-Annotations"
    assert len(load_npy(ann_dir / "videoname.npy")) == 200
    assert len(load_npy(ann_dir / "segments.npy")) == 200
    assert len(load_npy(ann_dir / "classlist.npy")) == 20
    assert (
        ann_dir / "Ambiguous_test.txt"
    ).read_text() == ""  # only test videos have ambiguous intervals
    source, ann = open_feature_source(out, "wtalc")
    assert len(source.video_ids) == 200 and set(ann.videos["subset"]) == {"validation"}
    assert len(ann.segments) == 3007


def test_write_wtalc_dataset_checks_counts(tmp_path):
    with pytest.raises(ValueError, match="3 feature arrays for 412 annotated videos"):
        write_wtalc_dataset(
            tmp_path, "X", [np.zeros((1, 2))] * 3, shipped_annotations_dir("thumos14")
        )
    assert not list(tmp_path.iterdir())


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(ValueError, match="no shipped annotations for dataset 'UCF101'"):
        synthesize_command(tmp_path, "UCF101")
