"""Real-feature layouts as W-TALC distributes them, with small features of the real video counts.

THUMOS14 (412 videos) and ActivityNet1.2 (7,202 videos) feature files are written with the
shipped annotations' snippet counts and 2 channels per modality, so ingestion sees the real
datasets' structure at a few MB.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import shutil
import tracemalloc
import weakref

import mlflow
import numpy as np
import pytest
from data_helpers import object_array

from co2net_pipeline.data.annotations import (
    expected_snippets,
    load_shipped_annotations,
    save_wtalc_annotations,
    shipped_annotations_dir,
)
from co2net_pipeline.data.formats import (
    FeatureFormatError,
    open_feature_source,
    resolve_wtalc_layout,
)
from co2net_pipeline.data.ingest import ingest
from co2net_pipeline.data.npy_stream import iter_object_npy
from co2net_pipeline.data.safe_npy import UnsafeNpyError
from co2net_pipeline.data.validation import DataValidationError

DIM = 2  # channels per modality


def _write_features(path, dataset: str, n: int | None = None, dim: int = DIM) -> None:
    """`path`: W-TALC object array with T = round(duration·25/16) snippets per shipped video."""
    videos = load_shipped_annotations(dataset).videos
    lengths = np.maximum(expected_snippets(videos["duration_s"].to_numpy()), 1)[:n]
    rng = np.random.default_rng(len(lengths))
    entries = [rng.standard_normal((t, 2 * dim)).astype(np.float32) for t in lengths]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, object_array(entries), allow_pickle=True)


@pytest.fixture(scope="module")
def thumos_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("thumos") / "Thumos14reduced-I3D-JOINTFeatures.npy"
    _write_features(path, "thumos14")
    return path


@pytest.fixture(scope="module")
def anet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("anet") / "ActivityNet1.2-I3D-JOINTFeatures.npy"
    _write_features(path, "activitynet12")
    return path


def _outputs(root):
    return {
        "store_path": root / "store.h5",
        "tables_dir": root / "tables",
        "report_dir": root / "report",
        "params": {"feature_dim": DIM},
    }


def _user_annotations(folder, dataset: str, ambiguous: bool) -> None:
    """A copy of the shipped annotation folder as W-TALC ships it (no Ambiguous_test.txt)."""
    shutil.copytree(shipped_annotations_dir(dataset), folder)
    if not ambiguous:
        (folder / "Ambiguous_test.txt").unlink(missing_ok=True)


@pytest.mark.parametrize("given", ["folder", "file"])
def test_thumos14_features_file_alone(tmp_path, thumos_file, caplog, given):
    """README recipe: the features file alone, in a folder or by path: shipped annotations."""
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / thumos_file.name).symlink_to(thumos_file)
    caplog.set_level(logging.INFO, logger="co2net_pipeline.data.formats")
    path = folder if given == "folder" else folder / thumos_file.name
    result = ingest(path, **_outputs(tmp_path))
    assert len(result.videos) == 412 and result.store_path.is_file()
    assert len(result.ambiguous) == 99  # the filter stays on
    assert result.report["ambiguous_intervals"] == "shipped Ambiguous_test.txt (99 intervals)"
    assert result.report["annotations_source"].startswith("shipped (")
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert sum("using the shipped Thumos14reduced annotations" in m for m in infos) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_thumos14_wtalc_folder_without_ambiguous_file(tmp_path, thumos_file, caplog):
    """W-TALC's Thumos14reduced-Annotations/ lacks Ambiguous_test.txt: the shipped one + WARNING."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / thumos_file.name).symlink_to(thumos_file)
    _user_annotations(raw / "Thumos14reduced-Annotations", "thumos14", ambiguous=False)
    caplog.set_level(logging.INFO, logger="co2net_pipeline.data.formats")
    source, annotations = open_feature_source(raw, "wtalc")
    assert source.layout.annotations_origin == "user"
    assert source.layout.ambiguous_state == "on (shipped Ambiguous_test.txt)"
    assert len(annotations.ambiguous) == 99
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "has no Ambiguous_test.txt" in warnings[0]

    # With the file present, the user's copy is used and nothing is said about it.
    caplog.clear()
    shutil.copy(
        shipped_annotations_dir("thumos14") / "Ambiguous_test.txt",
        raw / "Thumos14reduced-Annotations",
    )
    source, annotations = open_feature_source(raw / thumos_file.name, "wtalc")
    assert source.layout.ambiguous_state == "on (user Ambiguous_test.txt)"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_user_annotations_that_differ_are_described(tmp_path, thumos_file, caplog):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / thumos_file.name).symlink_to(thumos_file)
    shipped = load_shipped_annotations("thumos14")
    videos = shipped.videos.copy()
    videos.loc[3, "duration_s"] += 2.0
    videos.at[5, "labels"] = ["Diving"]
    changed = type(shipped)(shipped.name, shipped.classlist, videos, shipped.segments)
    save_wtalc_annotations(changed, raw / "Thumos14reduced-Annotations")
    caplog.set_level(logging.WARNING, logger="co2net_pipeline.data.formats")
    open_feature_source(raw, "wtalc")
    lines = [r.getMessage() for r in caplog.records]
    v3, v5 = videos["video_id"][3], videos["video_id"][5]
    assert any(f"durations: 1 video(s) differ, by up to 2.000 s ({v3})" in m for m in lines)
    assert any(f"labels: 1 video(s) differ ({v5})" in m for m in lines)
    assert not any("video names" in m or "video order" in m for m in lines)


def test_activitynet12_features_file_alone(tmp_path, anet_file, caplog):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / anet_file.name).symlink_to(anet_file)
    caplog.set_level(logging.INFO, logger="co2net_pipeline.data.formats")
    result = ingest(folder, **_outputs(tmp_path))
    assert result.videos["subset"].value_counts().to_dict() == {
        "training": 4819,
        "validation": 2383,
    }
    assert result.report["ambiguous_intervals"].startswith("none (no Ambiguous_test.txt")
    infos = [r.getMessage() for r in caplog.records]
    assert any("ambiguous filter off: ActivityNet1.2 has no Ambiguous_test.txt" in m for m in infos)
    assert any("using the shipped ActivityNet1.2 annotations" in m for m in infos)


def test_features_file_streams_one_video_at_a_time(thumos_file, tmp_path):
    """Nothing but the caller keeps an entry: once dropped, it is gone (weakref), so ingestion
    holds one video whatever the file size; a truncated file yields its first entries first."""
    dead = []
    previous = None
    for entry in iter_object_npy(thumos_file):
        if previous is not None:
            dead.append(previous() is None)
        previous = weakref.ref(entry)
        del entry
    assert len(dead) == 411 and all(dead)
    tracemalloc.start()
    for _ in iter_object_npy(thumos_file):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Small per-entry bookkeeping (shape tuples in the memo) remains; no copy of the buffers.
    assert peak < thumos_file.stat().st_size / 2

    cut = tmp_path / "cut.npy"
    data = thumos_file.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    seen = 0
    with pytest.raises(ValueError, match=r"cut\.npy: unreadable object array after \d+ entries"):
        for _ in iter_object_npy(cut):
            seen += 1
    assert 150 < seen < 260  # about half the videos came out before the end of the data


def test_streamed_file_keeps_the_restricted_unpickler(tmp_path):
    bad = tmp_path / "bad.npy"
    with open(bad, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "|O", "fortran_order": False, "shape": (1,)}
        )
        pickle.dump(_Exploit(), fh, protocol=4)
    with pytest.raises(UnsafeNpyError, match="refusing to unpickle 'builtins.print'"):
        list(iter_object_npy(bad))


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_unrecognised_layouts_are_one_line_errors(tmp_path, thumos_file):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as err:
        resolve_wtalc_layout(empty)
    message = str(err.value)
    assert "\n" not in message and str(empty) in message
    assert "Thumos14reduced-I3D-JOINTFeatures.npy (412 videos)" in message

    odd = tmp_path / "odd" / "Mine-I3D-JOINTFeatures.npy"
    odd.parent.mkdir()
    np.save(odd, object_array([np.zeros((3, 4), np.float32)] * 5), allow_pickle=True)
    with pytest.raises(FeatureFormatError) as err:
        resolve_wtalc_layout(odd.parent)
    message = str(err.value)
    assert "\n" not in message and str(odd) in message
    assert "5 videos match neither Thumos14reduced (412) nor ActivityNet1.2 (7202)" in message

    short = tmp_path / "short" / "Thumos14reduced-I3D-JOINTFeatures.npy"
    _write_features(short, "thumos14", n=400)
    with pytest.raises(
        FeatureFormatError,
        match=r"400 videos, but the shipped Thumos14reduced annotations have 412",
    ):
        resolve_wtalc_layout(short)


def test_feature_annotation_count_or_order_mismatch(tmp_path, thumos_file):
    """Features align by position: more features than annotations is refused, a reordering reported."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / thumos_file.name).symlink_to(thumos_file)
    shipped = load_shipped_annotations("thumos14")
    durations = shipped.videos["duration_s"].to_numpy()
    far = int(np.argmax(np.abs(durations - durations[0])))  # lengths then disagree clearly
    order = np.arange(len(durations))
    order[[0, far]] = order[[far, 0]]
    swapped = type(shipped)(
        shipped.name,
        shipped.classlist,
        shipped.videos.iloc[order].reset_index(drop=True),
        shipped.segments,
    )
    save_wtalc_annotations(swapped, raw / "Thumos14reduced-Annotations")
    # W-TALC features carry no names: a reordering shows only as lengths that disagree with
    # the durations, which validation reports (as the reference tolerates small ones).
    report = ingest(raw, **_outputs(tmp_path)).report
    assert shipped.videos["video_id"][far] in report["warnings"]["length_mismatch"]["videos"]

    fewer = type(shipped)(
        shipped.name,
        shipped.classlist,
        shipped.videos.iloc[1:].reset_index(drop=True),
        shipped.segments,
    )
    shutil.rmtree(raw / "Thumos14reduced-Annotations")
    save_wtalc_annotations(fewer, raw / "Thumos14reduced-Annotations")
    with pytest.raises(DataValidationError, match="1 video\\(s\\) have features but no annotation"):
        ingest(raw, **_outputs(tmp_path))


def test_raw_features_datasets(tmp_path, thumos_file):
    """The raw layer as Kedro datasets: a lazy source and its annotations, paired by the
    ingestion node; read-only."""
    from kedro.io import DatasetError

    from co2net_pipeline.kedro_glue.datasets import AnnotationsDataset, WtalcFeaturesDataset

    dataset = WtalcFeaturesDataset(filepath=str(thumos_file.parent))
    assert dataset.exists()
    source = dataset.load()
    assert source.format == "wtalc" and source.video_ids[0] == "<entry 0>"
    found = AnnotationsDataset(wtalc_features=str(thumos_file.parent)).load()
    assert found.layout.annotations_origin == "shipped"
    assert found.annotations.name == "Thumos14reduced" and len(found.annotations.ambiguous) == 99
    paired = source.paired(found)
    assert len(paired.video_ids) == 412
    assert paired.video_ids == found.annotations.videos["video_id"].tolist()
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save(source)
    annotations = AnnotationsDataset(
        filepath=str(shipped_annotations_dir("activitynet12")), dataset_name="ActivityNet1.2"
    ).load()
    assert len(annotations.annotations.videos) == 7202 and annotations.layout is None
    with pytest.raises(FeatureFormatError, match="by position"):
        source.paired(annotations)
    assert not WtalcFeaturesDataset(filepath=str(tmp_path / "missing")).exists()
    assert not AnnotationsDataset(wtalc_features=str(tmp_path / "missing")).exists()


@pytest.mark.slow
def test_env_thumos14_runs_on_the_features_file_alone(tmp_path):
    """The README recipe: `kedro run --env thumos14` with only the feature file in
    data/01_raw/thumos14 (tiny width and schedule); the ambiguous filter is on and recorded."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro_helpers import copy_project, find_runs, one_torch_thread, tiny_params

    project = copy_project(tmp_path)
    _write_features(
        project / "data/01_raw/thumos14/Thumos14reduced-I3D-JOINTFeatures.npy", "thumos14", dim=8
    )
    params = tiny_params(
        {"training": {"max_iter": 4, "interval": 2}, "evaluation": {"test_curve_every": 0}}
    )
    with contextlib.chdir(project), one_torch_thread():
        bootstrap_project(project)
        with KedroSession.create(
            project_path=project, env="thumos14", runtime_params=params
        ) as session:
            session.run(pipeline_names=["train_eval"])
    while mlflow.active_run() is not None:
        mlflow.end_run()
    tags = find_runs(project)[0].data.tags
    assert tags["ambiguous_intervals"] == "shipped Ambiguous_test.txt (99 intervals)"
    assert tags["ambiguous_filter"] == "on (99 ambiguous intervals)"


def test_repeated_video_id_in_user_annotations_is_named(tmp_path, thumos_file, caplog):
    """Issue 24: the difference report once crashed on broadcasting; the id is named instead."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / thumos_file.name).symlink_to(thumos_file)
    shipped = load_shipped_annotations("thumos14")
    videos = shipped.videos.copy()
    repeated = videos.at[7, "video_id"]
    videos.at[8, "video_id"] = repeated
    changed = type(shipped)(shipped.name, shipped.classlist, videos, shipped.segments)
    save_wtalc_annotations(changed, raw / "Thumos14reduced-Annotations")
    caplog.set_level(logging.WARNING, logger="co2net_pipeline.data.formats")
    with pytest.raises(DataValidationError) as info:
        ingest(raw, **_outputs(tmp_path / "out"))
    message = str(info.value)
    assert "\n" not in message and "duplicated video id" in message and repeated in message
    assert any(f"video names: 1 repeated ({repeated})" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "out").exists()
