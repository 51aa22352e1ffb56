"""The HDF5 feature store and array store: round trips, atomic writes, lazy reads."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import leftover_temp_files

from co2net_pipeline.data.store import (
    FeatureStore,
    PendingFeatureStore,
    read_array_store,
    read_store_attrs,
    write_array_store,
    write_feature_store,
)


def test_round_trip_float32(tmp_path, tiny):
    _, features = tiny
    path = write_feature_store(
        tmp_path / "s.h5", features.items(), attrs={"fingerprint": "abc", "dataset_name": "Tiny"}
    )
    with FeatureStore(path) as store:
        assert store.video_ids == list(features)
        assert store.lengths == {"vid_a": 16, "vid_b": 25, "vid_c": 12, "vid_d": 20}
        assert (
            store.feature_dim == 3 and store.fingerprint == "abc" and store.dataset_name == "Tiny"
        )
        assert store.attrs["dtype"] == "float32" and store.attrs["created_at"].endswith("+00:00")
        assert len(store) == 4 and "vid_c" in store and "nope" not in store
        for vid, array in features.items():
            out = store[vid]
            assert out.dtype == np.float32
            np.testing.assert_array_equal(out, array)
        assert list(store.load_all(["vid_d", "vid_a"])) == ["vid_d", "vid_a"]
        with pytest.raises(KeyError, match="no video 'nope'"):
            store["nope"]


def test_float16_store_reads_float32(tmp_path, tiny):
    _, features = tiny
    write_feature_store(tmp_path / "s.h5", features.items(), dtype="float16")
    store = FeatureStore(tmp_path / "s.h5")
    assert store.attrs["dtype"] == "float16"
    out = store["vid_b"]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, features["vid_b"], rtol=1e-3, atol=1e-3)
    store.close()
    with pytest.raises(ValueError, match="video v: values beyond ±65504 overflow float16"):
        write_feature_store(tmp_path / "t.h5", [("v", np.full((2, 2), 1e6))], dtype="float16")
    assert not (tmp_path / "t.h5").exists()


def test_interrupted_write_keeps_previous_store(tmp_path, tiny):
    _, features = tiny
    path = write_feature_store(tmp_path / "s.h5", features.items(), attrs={"fingerprint": "old"})
    before = path.read_bytes()

    def failing():
        yield "vid_a", features["vid_a"]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_feature_store(path, failing(), attrs={"fingerprint": "new"})
    assert path.read_bytes() == before
    assert leftover_temp_files(tmp_path) == []

    def interrupted():
        yield "vid_a", features["vid_a"]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_feature_store(path, interrupted())
    assert FeatureStore(path).fingerprint == "old"
    assert leftover_temp_files(tmp_path) == []


@pytest.mark.parametrize(
    "items, message",
    [
        ([("a/b", np.zeros((2, 4)))], r"video id 'a/b' cannot be an HDF5 name"),
        ([("", np.zeros((2, 4)))], r"video id '' cannot be an HDF5 name"),
        ([("a", np.zeros((2, 4))), ("a", np.zeros((2, 4)))], r"video a given twice"),
        ([("a", np.zeros(4))], r"video a: features must be \(T, 2D\), got shape \(4,\)"),
        ([("a", np.zeros((2, 3)))], r"video a: 3 columns cannot split into RGB and flow"),
        (
            [("a", np.zeros((2, 4))), ("b", np.zeros((2, 6)))],
            r"video b: features have 6 columns, expected 4",
        ),
    ],
)
def test_bad_items(tmp_path, items, message):
    with pytest.raises(ValueError, match=message):
        write_feature_store(tmp_path / "s.h5", items)
    assert not (tmp_path / "s.h5").exists()
    assert leftover_temp_files(tmp_path) == []


def test_empty_store_and_bad_dtype(tmp_path):
    store = FeatureStore(write_feature_store(tmp_path / "s.h5", [], attrs={"feature_dim": 7}))
    assert store.video_ids == [] and store.feature_dim == 7
    with pytest.raises(ValueError, match="store dtype must be one of"):
        write_feature_store(tmp_path / "s.h5", [], dtype="int8")


def test_not_a_store(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"x\.h5: not a readable HDF5 feature store"):
        FeatureStore(tmp_path / "x.h5")
    write_array_store(tmp_path / "a.h5", {})
    with pytest.raises(ValueError, match=r"a\.h5: not a co2net feature store"):
        FeatureStore(tmp_path / "a.h5")
    assert read_store_attrs(tmp_path / "missing.h5") == {}


def test_array_store_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    data = {
        "vid_z": {
            "cas": rng.standard_normal((5, 3)).astype(np.float32),
            "attention": rng.random(5),
        },
        "vid_a": {
            "cas": rng.standard_normal((2, 3)).astype(np.float32),
            "attention": rng.random(2),
        },
    }
    write_array_store(tmp_path / "cas.h5", data, attrs={"model": "co2", "thresholds": [0.1, 0.2]})
    back = read_array_store(tmp_path / "cas.h5")
    assert list(back) == ["vid_z", "vid_a"]  # written order, not alphabetical
    for vid in data:
        for name in data[vid]:
            np.testing.assert_array_equal(back[vid][name], data[vid][name])
            assert back[vid][name].dtype == data[vid][name].dtype
    attrs = read_store_attrs(tmp_path / "cas.h5")
    assert attrs["model"] == "co2" and attrs["thresholds"] == "[0.1, 0.2]"
    with pytest.raises(ValueError, match="array name 'a/b' cannot be an HDF5 name"):
        write_array_store(tmp_path / "cas.h5", {"v": {"a/b": np.zeros(2)}})
    assert list(read_array_store(tmp_path / "cas.h5")) == ["vid_z", "vid_a"]  # old file intact
    assert leftover_temp_files(tmp_path) == []


def test_pending_store_skips_when_current(tmp_path, tiny):
    _, features = tiny
    calls = []

    def items():
        calls.append(1)
        return iter(features.items())

    pending = PendingFeatureStore(items, {"fingerprint": "f1", "params_json": "{}"})
    assert pending.write(tmp_path / "s.h5") is True
    assert pending.write(tmp_path / "s.h5") is False
    assert len(calls) == 1
    assert PendingFeatureStore(items, {"fingerprint": "f2", "params_json": "{}"}).write(
        tmp_path / "s.h5"
    )
    assert PendingFeatureStore(
        items, {"fingerprint": "f2", "params_json": "{}"}, dtype="float16"
    ).write(tmp_path / "s.h5")
    assert len(calls) == 3
    assert FeatureStore(tmp_path / "s.h5").attrs["dtype"] == "float16"


def test_store_reopens_in_forked_child_and_pickles(tmp_path, tiny):
    import multiprocessing as mp
    import pickle

    _, features = tiny
    store = FeatureStore(write_feature_store(tmp_path / "s.h5", features.items()))
    store["vid_a"]  # handle opened in the parent, inherited by the fork
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=lambda: queue.put(float(store["vid_b"].sum())))
    child.start()
    total = queue.get(timeout=30)
    child.join(timeout=30)
    assert total == pytest.approx(float(features["vid_b"].sum()), rel=1e-5)
    clone = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(clone["vid_c"], features["vid_c"])
    np.testing.assert_array_equal(store["vid_c"], features["vid_c"])
