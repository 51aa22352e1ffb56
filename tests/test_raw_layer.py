"""The raw layer: the features and their annotations are catalogued datasets that feed
feature_ingestion; where they are is `raw_data` (globals or one run's params), their format is
the dataset type."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from kedro_helpers import QUIET_ENV, copy_project, run_command, run_pipeline

from co2net_pipeline.data.formats import open_feature_source
from co2net_pipeline.data.store import FeatureStore
from co2net_pipeline.pipeline_registry import register_pipelines

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = "data/01_raw/synthetic"
ANNOTATIONS = f"{SYNTHETIC}/Thumos14reduced-Annotations"
STORE = "data/02_intermediate/feature_store.h5"
REPORT = "data/08_reporting/validation_report.json"


def test_train_eval_starts_from_the_raw_layer():
    from kedro.framework.project import configure_project

    configure_project("co2net_pipeline")
    catalog = yaml.safe_load((ROOT / "conf/base/catalog.yml").read_text())
    registered = register_pipelines()
    for name in ("train_eval", "feature_ingestion", "__default__"):
        assert {"raw_features", "raw_annotations"} <= registered[name].inputs(), name
    for name in ("raw_features", "raw_annotations"):
        assert catalog[name]["metadata"]["kedro-viz"]["layer"] == "raw"
    ingest = next(n for n in registered["train_eval"].nodes if n.name.endswith("ingest_features"))
    # no path reaches a node as a parameter: the node reads datasets and its own settings only
    assert ingest.inputs == ["raw_features", "raw_annotations", "params:feature_ingestion"]


@pytest.fixture(scope="module")
def synthetic_project(tmp_path_factory) -> Path:
    """A project copy with the tiny synthetic set written and ingested from its default place."""
    project = copy_project(tmp_path_factory.mktemp("raw_layer"))
    run_pipeline(project, "synthetic_data")
    run_pipeline(project, "feature_ingestion")
    shutil.copy(project / STORE, project / "reference_store.h5")
    return project


def _store(path: Path) -> dict[str, np.ndarray]:
    with FeatureStore(path) as store:
        return store.load_all()


def test_one_run_reads_features_elsewhere(synthetic_project, tmp_path):
    """`--params raw_data.features=PATH` points the catalog at features outside the project."""
    project = synthetic_project
    elsewhere = tmp_path / "shared" / "thumos14"
    shutil.copytree(project / SYNTHETIC, elsewhere)
    (project / STORE).unlink()
    run_pipeline(project, "feature_ingestion", {"raw_data": {"features": str(elsewhere)}})
    report = json.loads((project / REPORT).read_text())
    assert report["features_path"] == str(elsewhere / "Thumos14reduced-I3D-JOINTFeatures.npy")
    assert report["annotations_path"] == [str(elsewhere / "Thumos14reduced-Annotations")]
    reference, moved = _store(project / "reference_store.h5"), _store(project / STORE)
    assert list(moved) == list(reference)
    assert all(np.array_equal(moved[v], reference[v]) for v in reference)


def _write_npy_folder(source, folder: Path) -> None:
    for modality in ("rgb", "flow"):
        (folder / modality).mkdir(parents=True)
    for vid, features in source.iter_features():
        half = features.shape[1] // 2
        np.save(folder / "rgb" / f"{vid}.npy", features[:, :half])
        np.save(folder / "flow" / f"{vid}.npy", features[:, half:])


def _write_hdf5(source, path: Path) -> None:
    with h5py.File(path, "w") as fh:
        for vid, features in source.iter_features():
            fh.create_dataset(vid, data=features)


@pytest.mark.parametrize(
    ("dataset_type", "filepath", "write"),
    [
        ("NpyFolderFeaturesDataset", "data/01_raw/npy", _write_npy_folder),
        ("Hdf5FeaturesDataset", "data/01_raw/features.h5", _write_hdf5),
    ],
)
def test_another_format_is_another_raw_dataset(synthetic_project, dataset_type, filepath, write):
    """conf/local/catalog.yml replaces the raw entries (README "Real features"): the same
    videos ingest to the same store whatever the input format."""
    project = synthetic_project
    source, _ = open_feature_source(project / SYNTHETIC, "wtalc")
    write(source, project / filepath)
    location = "${runtime_params:raw_data.features,${globals:raw_data.features}}"
    local = {
        "raw_features": {
            "type": f"co2net_pipeline.kedro_glue.datasets.{dataset_type}",
            "filepath": location,
            "metadata": {"kedro-viz": {"layer": "raw"}},
        },
        "raw_annotations": {
            "type": "co2net_pipeline.kedro_glue.datasets.AnnotationsDataset",
            "filepath": "${runtime_params:raw_data.annotations,${globals:raw_data.annotations}}",
            "dataset_name": "Thumos14reduced",
            "metadata": {"kedro-viz": {"layer": "raw"}},
        },
    }
    catalog = project / "conf/local/catalog.yml"
    catalog.write_text(yaml.safe_dump(local))
    where = {"raw_data": {"features": filepath, "annotations": ANNOTATIONS}}
    try:
        run_pipeline(project, "feature_ingestion", where)
    finally:
        catalog.unlink()
    report = json.loads((project / REPORT).read_text())
    assert report["features_path"] == str(project / filepath)
    reference, ingested = _store(project / "reference_store.h5"), _store(project / STORE)
    assert sorted(ingested) == sorted(reference)
    assert all(np.array_equal(ingested[v], reference[v]) for v in reference)


def test_a_broken_feature_file_is_one_line_naming_dataset_and_file(synthetic_project, tmp_path):
    """`kedro run` on a truncated W-TALC file: `Error: dataset 'raw_features': <file>: ...`,
    exit code 1, no traceback."""
    broken = tmp_path / "broken"
    broken.mkdir()
    original = synthetic_project / SYNTHETIC / "Thumos14reduced-I3D-JOINTFeatures.npy"
    (broken / original.name).write_bytes(original.read_bytes()[:50])
    done = run_command(
        synthetic_project,
        "kedro",
        *["run", "--pipelines=feature_ingestion", f"--params=raw_data.features={broken}"],
        env={**os.environ, **QUIET_ENV, "COLUMNS": "300"},
    )
    assert done.returncode == 1, done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "╭" not in output
    (error,) = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert error.startswith(f"Error: dataset 'raw_features': {broken / original.name}: ")


def test_raw_data_in_a_parameters_file_is_refused(tmp_path, monkeypatch):
    """The catalog reads raw_data from globals or one run's params; in a parameters file it
    would be silently ignored."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from co2net_pipeline.kedro_glue.parameter_hook import ConfigurationError

    monkeypatch.delenv("CO2NET_DEBUG", raising=False)
    project = copy_project(tmp_path)
    (project / "conf/local/parameters.yml").write_text("raw_data:\n  features: elsewhere\n")
    monkeypatch.chdir(project)
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        with pytest.raises(ConfigurationError, match="raw_data.features: set in a parameters"):
            session.run(pipeline_names=["feature_ingestion"])


def test_orchestrated_runs_read_raw_data_relative_to_the_project(tmp_path):
    """An Airflow task's Kedro project path is its output folder: the raw paths are made
    absolute against the project first."""
    from co2net_pipeline.studies.airflow import _config_loader, raw_data_locations

    loader = _config_loader(ROOT / "conf", "thumos14", None)
    assert raw_data_locations(loader, tmp_path, None) == {
        "features": str(tmp_path / "data/01_raw/thumos14")
    }
    runtime = {"raw_data": {"features": "/mnt/shared/t14", "annotations": "ann/T-Annotations"}}
    assert raw_data_locations(loader, tmp_path, runtime) == {
        "features": "/mnt/shared/t14",
        "annotations": str(tmp_path / "ann/T-Annotations"),
    }
