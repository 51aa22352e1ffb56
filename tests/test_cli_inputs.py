"""The user's input is never an output (issue 24): `co2net ingest --output` equal to or inside
an input, and `co2net synthesize` into a folder of files it did not write, are refused in one
line with the input byte-identical."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
from test_cli import assert_user_error, listing, run

from co2net_pipeline.data.ingest import ingest
from co2net_pipeline.data.synthetic import MANIFEST_NAME

sys.path.insert(0, str(Path(__file__).parent / "data"))  # the data-layer tests' tiny datasets
from data_helpers import make_annotations, make_features, write_wtalc  # noqa: E402


@pytest.fixture
def tiny_raw(tmp_path: Path) -> Path:
    annotations = make_annotations()
    return write_wtalc(tmp_path / "raw", annotations, make_features(annotations))


def _digest(root: Path) -> dict[str, str]:
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_ingest_output_onto_the_input_features_is_refused(tiny_raw: Path) -> None:
    features = tiny_raw / "Tiny-I3D-JOINTFeatures.npy"
    before, names = _digest(tiny_raw), listing(tiny_raw)
    for output, fragment in (
        (features, f"{features}: is an input ({features})"),
        (tiny_raw / "store.h5", f"lies inside the input folder {tiny_raw}"),
        (tiny_raw / "Tiny-Annotations" / "s.h5", "lies inside the input folder"),
    ):
        given = tiny_raw if output.parent == tiny_raw and output != features else features
        code, _, err = run(["ingest", "--features", str(given), "--output", str(output)])
        assert_user_error(code, err, "co2net ingest: error:", fragment)
    assert _digest(tiny_raw) == before and listing(tiny_raw) == names


def test_ingest_through_a_symlink_onto_its_target_is_refused(tiny_raw, tmp_path) -> None:
    link = tmp_path / "link.npy"
    features = tiny_raw / "Tiny-I3D-JOINTFeatures.npy"
    link.symlink_to(features)
    code, _, err = run(["ingest", "--features", str(features), "--output", str(link)])
    assert_user_error(code, err, f"{link}: is an input ({features})")
    assert link.is_symlink()


def test_library_ingest_refuses_default_paths_that_are_inputs(tiny_raw, tmp_path) -> None:
    features = tiny_raw / "Tiny-I3D-JOINTFeatures.npy"
    before = _digest(features)
    with pytest.raises(ValueError, match=r"is an input"):
        ingest(tiny_raw, store_path=features, tables_dir=tmp_path, report_dir=tmp_path)
    assert _digest(features) == before


def test_synthesize_refuses_a_folder_it_did_not_write(tiny_raw: Path) -> None:
    before = _digest(tiny_raw)
    code, _, err = run(["synthesize", "--output", str(tiny_raw), "--feature-dim", "2"])
    assert_user_error(
        code, err, f"{tiny_raw}: holds files the synthetic generator did not write", "manifest"
    )
    assert _digest(tiny_raw) == before


def test_synthesize_rewrites_its_own_folder(tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    (out).mkdir()
    (out / ".gitkeep").touch()  # hidden files do not make a folder someone else's
    args = ["synthesize", "--output", str(out), "--feature-dim", "2", "--subset", "validation"]
    assert run(args)[0] == 0
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["synthetic"] is True and not (out / ".synthetic-writing").exists()
    assert run([*args, "--seed", "1"])[0] == 0  # its own: rewritten
    assert json.loads((out / MANIFEST_NAME).read_text())["generator"]["seed"] == 1


@pytest.mark.parametrize(
    ("name", "text"),
    [("empty.json", '{"results": {}}'), ("empty.csv", "video_id,t_start,t_end,label,score\n")],
)
def test_evaluate_a_detector_that_found_nothing(tmp_path, name, text) -> None:
    predictions = tmp_path / name
    predictions.write_text(text)
    out_file = tmp_path / "metrics.json"
    code, out, err = run(["evaluate", "--predictions", str(predictions), "--output", str(out_file)])
    assert code == 0, err
    assert err == "warning: the predictions hold no detection: every AP is 0\n"
    assert "0 predictions)" in out and "Traceback" not in out
    document = json.loads(out_file.read_text())
    assert document["warnings"]["no_predictions"] == 1
    assert set(document["map"].values()) == {0.0}


def test_compare_on_a_file_that_is_not_an_mlflow_store_is_one_line(tmp_path) -> None:
    junk, empty = tmp_path / "junk.db", tmp_path / "empty.db"
    junk.write_bytes(bytes(range(256)) * 20)
    empty.write_bytes(b"")
    for db, problem in ((junk, "not a readable MLflow database (file is not a database)"),
                        (empty, "not a readable MLflow database (an empty file)")):  # fmt: skip
        code, _, err = run(["compare", "--tracking-uri", f"sqlite:///{db}"])
        assert_user_error(code, err, "co2net compare: error:", f"{db}: {problem}")
    assert empty.stat().st_size == 0  # a read-only command: MLflow's migrations never ran


def test_database_errors_raised_by_mlflow_are_one_line() -> None:
    import sqlalchemy.exc

    from co2net_pipeline.cli import UserError, _reports_user_errors

    @_reports_user_errors
    def locked_mid_read() -> None:
        raise sqlalchemy.exc.OperationalError("SELECT * FROM runs", {}, Exception("locked"))

    with pytest.raises(UserError) as info:
        locked_mid_read()
    assert info.value.format_message() == "MLflow database: (builtins.Exception) locked"


def test_compare_leaves_out_interrupted_and_running_runs(tmp_path) -> None:
    """Issue 24: a run stopped by Ctrl-C (now KILLED) or still running is not a result."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("co2net", artifact_location=str(tmp_path / "art"))
    for i, status in enumerate(["FINISHED", "KILLED", "RUNNING", "FAILED"]):
        run_ = client.create_run(experiment, start_time=1_700_000_000_000 + i, run_name=status)
        client.log_metric(run_.info.run_id, "detection_metrics.map_0.5", 0.1 * (i + 1))
        if status != "RUNNING":
            client.set_terminated(run_.info.run_id, status)
    out_dir = tmp_path / "comparison"
    code, out, err = run(["compare", "--tracking-uri", uri, "--output", str(out_dir)])
    assert code == 0, err
    header = (out_dir / "comparison.csv").read_text().splitlines()[0]
    assert "FINISHED" in header and not {"KILLED", "RUNNING", "FAILED"} & set(header.split(","))
