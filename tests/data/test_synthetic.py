"""The synthetic generator: real annotations, deterministic, fast, learnable-but-noisy signal."""

from __future__ import annotations

import ast
import hashlib
import io
import os
import platform
import subprocess
import sys
import time
import types
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from co2net_pipeline.data.annotations import (
    expected_snippets,
    load_shipped_annotations,
    load_wtalc_annotations,
    shipped_annotations_dir,
)
from co2net_pipeline.data.formats import open_feature_source
from co2net_pipeline.data.npy_writer import write_object_npy
from co2net_pipeline.data.safe_npy import load_npy
from co2net_pipeline.data.synthetic import (
    SyntheticParams,
    _class_model,
    _dataset_layout,
    _normal,
    generate_features,
    select_subset,
    synthesize,
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


def test_synthesize_writes_a_readable_wtalc_set(tmp_path, thumos):
    out = tmp_path / "synthetic"
    manifest = synthesize(out, "Thumos14reduced", {"feature_dim": 8, "seed": 1})
    assert manifest["synthetic"] and manifest["n_videos"] == 412
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
    assert manifest["n_snippets"] == sum(len(e) for e in expected)
    # The streamed file is the file np.save writes for the same object array.
    feature_file = out / "Thumos14reduced-I3D-JOINTFeatures.npy"
    assert feature_file.read_bytes() == _np_save_bytes(expected)
    # Same seed again: the same bytes on disk.
    first = feature_file.read_bytes()
    synthesize(out, "thumos14", {"feature_dim": 8, "seed": 1})
    assert feature_file.read_bytes() == first
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]


def test_synthesize_subset_restricts_the_annotation_files(tmp_path):
    out = tmp_path / "syn"
    synthesize(out, "Thumos14reduced", {"feature_dim": 4, "subset": ["validation"]})
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
    src = shipped_annotations_dir("thumos14")
    with pytest.raises(ValueError, match="3 feature arrays for 412 annotated videos"):
        write_wtalc_dataset(tmp_path, "X", [np.zeros((1, 2))] * 3, src)
    # An iterator is counted while it streams; a short or long one leaves nothing behind.
    with pytest.raises(ValueError, match="thumos14: 3 feature arrays for 412 annotated videos"):
        write_wtalc_dataset(tmp_path, "X", (np.zeros((1, 2)) for _ in range(3)), src)
    with pytest.raises(ValueError, match="more than 412 feature arrays for 412 annotated videos"):
        write_wtalc_dataset(tmp_path, "X", (np.zeros((1, 2)) for _ in range(413)), src)
    assert not list(tmp_path.iterdir())


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(ValueError, match="no shipped annotations for dataset 'UCF101'"):
        synthesize(tmp_path, "UCF101")
    assert not list(tmp_path.iterdir())


# ---- the streaming object-array writer --------------------------------------------------------


def _object_array(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _np_save_bytes(items: list) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, _object_array(items), allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize("count", [0, 1, 2, 999, 1000, 1001, 2001])
def test_streamed_npy_is_byte_identical_to_np_save(tmp_path, count):
    """Counts around the pickler's 1000-entry batches (the C pickler ends 1001 entries with a
    one-entry MARK…APPENDS batch, the pure-Python one with APPEND), entries below and above the
    64 KiB framing threshold and of other dtypes."""
    rng = np.random.default_rng(count)
    items = [rng.random((int(rng.integers(0, 30)), 4)).astype(np.float32) for _ in range(count)]
    if count == 2:
        items = [np.zeros((300, 64), np.float32), np.arange(5)]  # 75 KiB: outside a frame
    path = write_object_npy(tmp_path / "x.npy", (item.copy() for item in items), count)
    assert path.read_bytes() == _np_save_bytes(items)
    back = load_npy(path)
    assert back.shape == (count,)
    assert all(np.array_equal(a, b) for a, b in zip(back, items, strict=True))


def test_streamed_npy_releases_each_entry(tmp_path):
    """Peak memory ~ one entry: once written, an entry is referenced by nothing (the pickle memo
    included), so it is freed before the one after next is made."""
    refs: list[weakref.ref] = []
    alive_when_made: list[int] = []

    def entries():
        for i in range(50):
            alive_when_made.append(sum(r() is not None for r in refs))
            item = np.full((200, 64), i, np.float32)
            refs.append(weakref.ref(item))
            yield item
            del item

    write_object_npy(tmp_path / "x.npy", entries(), 50)
    assert max(alive_when_made) <= 1
    assert all(r() is None for r in refs)
    assert [int(a[0, 0]) for a in load_npy(tmp_path / "x.npy")] == list(range(50))


def test_streamed_npy_count_mismatch_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"x\.npy: 3 entries announced, the iterator gave 2"):
        write_object_npy(tmp_path / "x.npy", iter([np.zeros(1)] * 2), 3)
    with pytest.raises(ValueError, match=r"x\.npy: 1 entries announced, the iterator gave more"):
        write_object_npy(tmp_path / "x.npy", iter([np.zeros(1)] * 2), 1)
    assert not list(tmp_path.iterdir())


# ---- the same bytes on every CPU ----------------------------------------------------------------

# sha256 of the default embedded set (conf/base/parameters_synthetic_data.yml): of the feature
# file `kedro run --pipeline=synthetic_data` writes, and of the values alone (per video: the
# shape as two little-endian int64, then the float32 data), which does not depend on NumPy's
# pickle layout. Re-derive them only when the generative model is changed on purpose.
DEFAULT_FILE_SHA256 = "cd21a5bb87ab186a850f6c0e49b62b8b4370c95f053487ee06e86337d1d052aa"
DEFAULT_VALUES_SHA256 = "b468a36a171833baa08c5e81a8e9d822d681e91d5e0b1b6784ab9ae1c7d319b1"


def _values_digest(features) -> str:
    h = hashlib.sha256()
    for f in features:
        h.update(np.asarray(f.shape, dtype="<i8").tobytes())
        h.update(np.ascontiguousarray(f, dtype="<f4").tobytes())
    return h.hexdigest()


def _default_generator_params() -> tuple[str, dict]:
    conf = yaml.safe_load(
        (Path(__file__).parents[2] / "conf/base/parameters_synthetic_data.yml").read_text()
    )["synthetic_data"]
    return conf["dataset_name"], conf["generator"]


def test_synthetic_digest_of_the_default_set(tmp_path):
    """The pinned sha256 of the embedded default set: CI on any CPU kind checks it."""
    dataset, generator = _default_generator_params()
    manifest = synthesize(tmp_path, dataset, generator)
    feature_file = Path(manifest["features"])
    assert hashlib.sha256(feature_file.read_bytes()).hexdigest() == DEFAULT_FILE_SHA256
    assert _values_digest(load_npy(feature_file)) == DEFAULT_VALUES_SHA256


_ISA_PROBE = """
import hashlib, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_synthetic import _default_generator_params, _values_digest
from co2net_pipeline.data.annotations import load_shipped_annotations
from co2net_pipeline.data.synthetic import SyntheticParams, iter_features
from numpy._core._multiarray_umath import __cpu_features__
dataset, generator = _default_generator_params()
annotations = load_shipped_annotations("thumos14")
print(_values_digest(iter_features(annotations, SyntheticParams.from_dict(generator))))
print(" ".join(sorted(k for k, v in __cpu_features__.items() if v)))
"""


def test_synthetic_digest_without_simd_dispatch():
    """The default set again with NumPy's runtime SIMD dispatch off (every dispatched target of
    this NumPy build), glibc's AVX2/FMA/AVX-512 libm variants off and OpenBLAS's oldest x86
    kernel: the values digest must not move. (The generator uses neither libm nor BLAS; this
    checks that it stays so.)"""
    from numpy._core._multiarray_umath import __cpu_dispatch__

    env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=" ".join(__cpu_dispatch__))
    if platform.machine() in ("x86_64", "AMD64"):
        env["GLIBC_TUNABLES"] = "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F,-AVX512DQ"
        env["OPENBLAS_CORETYPE"] = "Prescott"
    done = subprocess.run(
        [sys.executable, "-c", _ISA_PROBE, str(Path(__file__).parent)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    digest, features = done.stdout.split("\n")[:2]
    assert not set(__cpu_dispatch__) & set(features.split()), features  # dispatch really off
    assert digest == DEFAULT_VALUES_SHA256


_FORBIDDEN_NUMPY = {
    # libm / SIMD transcendental functions: last bits differ between CPUs
    *"exp exp2 expm1 log log2 log10 log1p sin cos tan tanh sinh cosh arctan power".split(),
    "float_power",
    # float reductions: their order follows the SIMD width or the BLAS kernel
    *"sum mean std var prod dot vdot matmul einsum tensordot inner average".split(),
}
_FORBIDDEN_DRAWS = "standard_normal normal lognormal uniform exponential gamma beta choice".split()


class _StrictGenerator(np.random.Generator):
    def __getattribute__(self, name):
        if name in _FORBIDDEN_DRAWS:
            raise AssertionError(f"Generator.{name}: float or libm-based draws are not allowed")
        return super().__getattribute__(name)


class _StrictNumpy:
    """`np` for the generator module, refusing functions whose results depend on the CPU."""

    def __getattr__(self, name):
        if name in _FORBIDDEN_NUMPY:
            raise AssertionError(f"np.{name} is not bit-exact across CPUs")
        if name == "random":
            return types.SimpleNamespace(
                Generator=_StrictGenerator,
                PCG64=np.random.PCG64,
                SeedSequence=np.random.SeedSequence,
            )
        return getattr(np, name)


def test_generator_uses_only_cpu_independent_operations(monkeypatch, thumos):
    """Every code path of the generator (segments, ramps, context, shared factors) through a
    `np` that refuses transcendental functions, float reductions and non-integer random draws.
    ndarray methods and the @ operator are not intercepted: the module uses neither."""
    import co2net_pipeline.data.synthetic as synthetic

    monkeypatch.setattr(synthetic, "np", _StrictNumpy())
    test_only, _ = select_subset(thumos, ["test"])
    for params in (SyntheticParams(feature_dim=8), SyntheticParams(feature_dim=8, ramp_snippets=0)):
        strict = synthetic.generate_features(test_only, params)
        monkeypatch.setattr(synthetic, "np", np)
        assert _values_digest(strict) == _values_digest(generate_features(test_only, params))
        monkeypatch.setattr(synthetic, "np", _StrictNumpy())
    # What the proxy cannot see: the @ operator, reductions as ndarray methods, other libraries.
    tree = ast.parse(Path(synthetic.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp | ast.AugAssign):
            assert not isinstance(node.op, ast.MatMult), ast.unparse(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in _FORBIDDEN_NUMPY, ast.unparse(node)
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & {"scipy", "torch"}
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in ("scipy", "torch")


def test_irwin_hall_noise_is_gaussian_enough():
    z = _normal(np.random.Generator(np.random.PCG64(7)), (1000, 1000))
    assert z.shape == (1000, 1000) and z.dtype == np.float64
    assert abs(z.mean()) < 0.005 and abs(z.std() - 1) < 0.005
    assert np.abs(z).max() <= 6
    kurtosis = float(np.mean(z**4))
    assert 2.85 < kurtosis < 2.95  # Irwin–Hall(12): 3 − 1.2/12 = 2.9 (Gaussian: 3)
    assert 0.0440 < float(np.mean(np.abs(z) > 2)) < 0.0470  # Gaussian: 0.0455
    # The same draws give the same values, block boundaries included (2^14 values per block).
    again = _normal(np.random.Generator(np.random.PCG64(7)), 1_000_000)
    assert np.array_equal(again, z.reshape(-1))


# ---- the synthetic_data pipeline's catalogued output --------------------------------------------


def test_synthetic_data_node_output_is_written_by_the_catalog(tmp_path):
    """The node only describes the set; the catalog's `synthetic_features` dataset (its entry in
    conf/base/catalog.yml, path moved to tmp) streams it to disk and loads back the manifest."""
    from kedro.io import DataCatalog

    from co2net_pipeline.pipelines.synthetic_data.nodes import generate_synthetic_dataset

    root = Path(__file__).parents[2]
    entry = yaml.safe_load((root / "conf/base/catalog.yml").read_text())["synthetic_features"]
    catalog = DataCatalog.from_config({"synthetic_features": {**entry, "path": str(tmp_path)}})
    params = {"dataset_name": "thumos14", "generator": {"feature_dim": 4, "subset": ["test"]}}
    pending = generate_synthetic_dataset(params)
    assert not list(tmp_path.iterdir())  # nothing written by the node itself
    assert not catalog.exists("synthetic_features")
    catalog.save("synthetic_features", pending)
    manifest = catalog.load("synthetic_features")
    assert manifest["dataset_name"] == "Thumos14reduced" and manifest["n_videos"] == 212
    assert manifest["generator"]["feature_dim"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "Thumos14reduced-Annotations",
        "Thumos14reduced-I3D-JOINTFeatures.npy",
        "manifest.json",
    ]
    test_only, _ = select_subset(load_shipped_annotations("thumos14"), ["test"])
    expected = generate_features(test_only, SyntheticParams(feature_dim=4))
    written = load_npy(tmp_path / "Thumos14reduced-I3D-JOINTFeatures.npy")
    assert all(np.array_equal(a, b) for a, b in zip(written, expected, strict=True))


def test_synthetic_data_node_rejects_bad_parameters_before_writing():
    from co2net_pipeline.pipelines.synthetic_data.nodes import generate_synthetic_dataset

    with pytest.raises(ValueError, match="no shipped annotations for dataset 'UCF101'"):
        generate_synthetic_dataset({"dataset_name": "UCF101"})
    with pytest.raises(
        ValueError,
        match=r"synthetic_data\.generator\.noise: unknown parameter \(did you mean noise_std\?\)",
    ):
        generate_synthetic_dataset({"generator": {"noise": 1.0}})
