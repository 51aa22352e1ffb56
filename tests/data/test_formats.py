"""The three feature input formats: round trips, error messages, fingerprints."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from data_helpers import write_hdf5, write_json, write_npy_folder, write_wtalc

from co2net_pipeline.data.formats import FeatureFormatError, load_annotations, open_feature_source
from co2net_pipeline.data.store import write_feature_store


def _read_all(source) -> dict[str, np.ndarray]:
    return dict(source.iter_features())


def test_wtalc_round_trip_aligned_by_position(tmp_path, tiny):
    annotations, features = tiny
    write_wtalc(tmp_path, annotations, features)
    source, ann = open_feature_source(tmp_path, "wtalc")
    assert ann.name == "Tiny"
    assert source.video_ids == annotations.videos["video_id"].tolist()
    read = _read_all(source)
    for vid, array in features.items():
        np.testing.assert_array_equal(read[vid], array)
    # Same file given directly, and an explicit annotation folder.
    source2, _ = open_feature_source(
        tmp_path / "Tiny-I3D-JOINTFeatures.npy",
        "wtalc",
        annotations_path=tmp_path / "Tiny-Annotations",
    )
    assert source2.video_ids == source.video_ids


def test_wtalc_streams_each_pass(tmp_path, tiny):
    annotations, features = tiny
    write_wtalc(tmp_path, annotations, features)
    source, _ = open_feature_source(tmp_path, "wtalc")
    first = dict(source.iter_features())
    second = dict(source.iter_features())
    # Each pass re-reads the file entry by entry: nothing is cached between passes.
    assert all(first[v] is not second[v] and np.array_equal(first[v], second[v]) for v in first)
    # A request out of file order comes back in the requested order.
    assert [v for v, _ in source.iter_features(["vid_c", "vid_a"])] == ["vid_c", "vid_a"]
    np.testing.assert_array_equal(source._read("vid_d"), features["vid_d"])


def test_wtalc_dense_3d_array_is_accepted(tmp_path, tiny):
    annotations, _ = tiny
    write_wtalc(tmp_path, annotations, [])
    dense = np.zeros((4, 5, 6), dtype=np.float32)
    np.save(tmp_path / "Tiny-I3D-JOINTFeatures.npy", dense)
    source, _ = open_feature_source(tmp_path, "wtalc")
    assert source.feature_width == 6
    assert [a.shape for _, a in source.iter_features()] == [(5, 6)] * 4


@pytest.mark.parametrize("split", [False, True])
def test_npy_folder_round_trip(tmp_path, tiny, split):
    annotations, features = tiny
    write_npy_folder(tmp_path / "feats", features, split=split)
    source, ann = open_feature_source(
        tmp_path / "feats", "npy-folder", write_json(tmp_path / "a.json", annotations)
    )
    assert sorted(source.video_ids) == sorted(features)
    assert set(ann.videos["video_id"]) == set(features)
    for vid, array in source.iter_features():
        np.testing.assert_array_equal(array, features[vid])


@pytest.mark.parametrize("split", [False, True])
def test_hdf5_round_trip(tmp_path, tiny, split):
    annotations, features = tiny
    path = write_hdf5(tmp_path / "feats.h5", features, split=split)
    source, _ = open_feature_source(path, "hdf5", write_json(tmp_path / "a.json", annotations))
    assert sorted(source.video_ids) == sorted(features)
    for vid, array in source.iter_features(["vid_c", "vid_a"]):
        np.testing.assert_array_equal(array, features[vid])


def test_hdf5_reads_a_feature_store(tmp_path, tiny):
    annotations, features = tiny
    write_feature_store(tmp_path / "store.h5", features.items())
    source, _ = open_feature_source(
        tmp_path / "store.h5", "hdf5", write_json(tmp_path / "a.json", annotations)
    )
    assert source.video_ids == list(features)
    np.testing.assert_array_equal(dict(source.iter_features())["vid_b"], features["vid_b"])


def test_annotations_by_path_type(tmp_path, tiny):
    annotations, _ = tiny
    csv = tmp_path / "gt.csv"
    annotations.segments.rename(columns={"t_start_s": "t_start", "t_end_s": "t_end"}).to_csv(
        csv, index=False
    )
    assert len(load_annotations(csv).segments) == 6
    assert len(load_annotations(write_json(tmp_path / "a.json", annotations)).videos) == 4
    with pytest.raises(ValueError, match=r"notes\.txt: annotations must be"):
        (tmp_path / "notes.txt").write_text("x")
        load_annotations(tmp_path / "notes.txt")


def test_errors_name_the_file(tmp_path, tiny):
    annotations, features = tiny
    with pytest.raises(ValueError, match="unknown feature format 'parquet'"):
        open_feature_source(tmp_path, "parquet")
    with pytest.raises(FileNotFoundError, match="no '\\*-I3D-JOINTFeatures.npy' file"):
        open_feature_source(tmp_path, "wtalc")
    with pytest.raises(
        FileNotFoundError, match="Missing-I3D-JOINTFeatures.npy: W-TALC feature file not found"
    ):
        open_feature_source(tmp_path, "wtalc", dataset_name="Missing")
    write_npy_folder(tmp_path / "feats", features)
    with pytest.raises(ValueError, match="format 'npy-folder' needs annotations_path"):
        open_feature_source(tmp_path / "feats", "npy-folder")

    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "Bad-I3D-JOINTFeatures.npy").write_bytes(b"not numpy at all")
    with pytest.raises(FeatureFormatError, match=r"Bad-I3D-JOINTFeatures\.npy: not a \.npy file"):
        open_feature_source(tmp_path / "w", "wtalc", annotations_path=tmp_path / "w")

    np.save(tmp_path / "w" / "Bad-I3D-JOINTFeatures.npy", np.zeros((3, 4), np.float32))
    write_wtalc(tmp_path / "w", annotations, features, name="Bad")
    np.save(tmp_path / "w" / "Bad-I3D-JOINTFeatures.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(
        FeatureFormatError, match=r"expected an object array of per-video \(T, 2D\) arrays"
    ):
        open_feature_source(tmp_path / "w", "wtalc")


def test_wtalc_features_refuse_annotations_that_cannot_pair_by_position(tmp_path, tiny):
    annotations, features = tiny
    write_wtalc(tmp_path, annotations, features)
    gt = write_json(tmp_path / "gt.json", annotations)
    with pytest.raises(FeatureFormatError, match=r"gt\.json: W-TALC features pair .* by position"):
        open_feature_source(tmp_path, "wtalc", annotations_path=gt)


def test_npy_folder_missing_modality(tmp_path, tiny):
    annotations, features = tiny
    write_npy_folder(tmp_path / "feats", features, split=True)
    os.remove(tmp_path / "feats" / "flow" / "vid_c.npy")
    with pytest.raises(
        FeatureFormatError, match=r"flow: video vid_c has rgb features but no flow features"
    ):
        open_feature_source(
            tmp_path / "feats", "npy-folder", write_json(tmp_path / "a.json", annotations)
        )


def test_npy_folder_modality_shapes_must_agree(tmp_path, tiny):
    annotations, features = tiny
    write_npy_folder(tmp_path / "feats", features, split=True)
    np.save(tmp_path / "feats" / "flow" / "vid_b.npy", np.zeros((3, 3), np.float32))
    source, _ = open_feature_source(
        tmp_path / "feats", "npy-folder", write_json(tmp_path / "a.json", annotations)
    )
    with pytest.raises(
        FeatureFormatError, match=r"video vid_b: rgb features have shape \(25, 3\), flow \(3, 3\)"
    ):
        _read_all(source)


def test_hdf5_group_without_flow(tmp_path, tiny):
    annotations, features = tiny
    path = write_hdf5(tmp_path / "feats.h5", features, split=True)
    with h5py.File(path, "a") as fh:
        del fh["vid_d/flow"]
    source, _ = open_feature_source(path, "hdf5", write_json(tmp_path / "a.json", annotations))
    with pytest.raises(
        FeatureFormatError, match=r"feats\.h5:/vid_d: video vid_d: group lacks flow dataset"
    ):
        _read_all(source)


def test_hdf5_not_hdf5(tmp_path, tiny):
    annotations, _ = tiny
    (tmp_path / "feats.h5").write_bytes(b"\x00" * 100)
    with pytest.raises(FeatureFormatError, match=r"feats\.h5: not a readable HDF5 file"):
        open_feature_source(
            tmp_path / "feats.h5", "hdf5", write_json(tmp_path / "a.json", annotations)
        )


def test_fingerprint_tracks_features_and_annotations(tmp_path, tiny):
    annotations, features = tiny
    write_wtalc(tmp_path, annotations, features)

    def fp(full=False):
        return open_feature_source(tmp_path, "wtalc")[0].fingerprint(full=full)

    first, first_full = fp(), fp(full=True)
    assert fp() == first and fp(full=True) == first_full
    features["vid_b"][3, 1] += 1.0  # same size; the rewrite changes content and mtime
    write_wtalc(tmp_path, annotations, features)
    assert fp() != first
    second = fp()
    ann_file = tmp_path / "Tiny-Annotations" / "duration.npy"
    np.save(ann_file, np.array([[10.24], [16.0], [7.68], [12.9]]))
    assert fp() != second


def test_fingerprint_differs_between_formats_and_folders(tmp_path, tiny):
    annotations, features = tiny
    ann = write_json(tmp_path / "a.json", annotations)
    write_npy_folder(tmp_path / "f1", features)
    write_hdf5(tmp_path / "f.h5", features)
    fp_folder = open_feature_source(tmp_path / "f1", "npy-folder", ann)[0].fingerprint()
    fp_h5 = open_feature_source(tmp_path / "f.h5", "hdf5", ann)[0].fingerprint()
    assert fp_folder != fp_h5
    np.save(tmp_path / "f1" / "vid_a.npy", features["vid_a"][:-1])
    assert open_feature_source(tmp_path / "f1", "npy-folder", ann)[0].fingerprint() != fp_folder


@pytest.mark.parametrize("split", [False, True])
def test_hdf5_video_declared_huge_is_refused_before_reading(tmp_path, tiny, split):
    """Issue 24: a few-KB file declaring a (2·10^8, 16) video was read whole (11.9 GiB)."""
    import tracemalloc

    annotations, features = tiny
    path = write_hdf5(tmp_path / "feats.h5", features, split=split)
    with h5py.File(path, "a") as fh:
        name = "vid_b/rgb" if split else "vid_b"
        del fh[name]
        fh.create_dataset(name, shape=(2 * 10**8, 16), dtype="f4", chunks=(10**5, 16),
                          compression="gzip")  # fmt: skip
    assert os.path.getsize(path) < 200_000
    source, _ = open_feature_source(path, "hdf5", write_json(tmp_path / "a.json", annotations))
    tracemalloc.start()
    try:
        with pytest.raises(FeatureFormatError) as info:
            _read_all(source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == (
        f"{path}:/vid_b: video vid_b: declares shape (200000000, 16) (11.9 GiB) but the file stores "
        "0 bytes for it: corrupt or not features; refused before reading"
    )
    assert peak < 50 * 2**20


def test_hdf5_external_links_are_fingerprinted_and_soft_links_refused(tmp_path, tiny):
    """Issue 24: after a linked file changed, re-ingestion said "up to date" (stale store)."""
    annotations, features = tiny
    ann = write_json(tmp_path / "a.json", annotations)
    linked = write_hdf5(tmp_path / "linked.h5", {"vid_a": features["vid_a"]}, split=False)
    path = write_hdf5(tmp_path / "feats.h5", features, split=False)
    with h5py.File(path, "a") as fh:
        del fh["vid_a"]
        fh["vid_a"] = h5py.ExternalLink("linked.h5", "/vid_a")
    source, _ = open_feature_source(path, "hdf5", ann)
    np.testing.assert_array_equal(dict(_read_all(source))["vid_a"], features["vid_a"])
    before = source.fingerprint()
    with h5py.File(linked, "a") as fh:
        fh["vid_a"][0, 0] += 1.0  # only the linked file changes
    assert open_feature_source(path, "hdf5", ann)[0].fingerprint() != before

    with h5py.File(path, "a") as fh:
        del fh["vid_b"]
        fh["vid_b"] = h5py.SoftLink("/vid_c")
    with pytest.raises(FeatureFormatError) as info:
        open_feature_source(path, "hdf5", ann)
    assert str(info.value) == (
        f"{path}:/vid_b: video vid_b: vid_b is a soft link to /vid_c; store each video's own "
        "features"
    )


def test_hdf5_rgb_that_is_a_group_is_one_line(tmp_path, tiny):
    annotations, features = tiny
    path = write_hdf5(tmp_path / "feats.h5", features, split=True)
    with h5py.File(path, "a") as fh:
        del fh["vid_c/rgb"]
        fh["vid_c"].create_group("rgb")
    source, _ = open_feature_source(path, "hdf5", write_json(tmp_path / "a.json", annotations))
    with pytest.raises(FeatureFormatError) as info:
        _read_all(source)
    assert str(info.value) == (
        f"{path}:/vid_c: video vid_c: rgb is an HDF5 Group, expected a (T, D) dataset of features"
    )
