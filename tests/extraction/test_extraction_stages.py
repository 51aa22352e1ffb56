"""The protocol's stages on their own: resampling by time, resizing, chunk counts, the flow's
one-frame shortfall, RGB and flow scaling, and the settings' defaults."""

from __future__ import annotations

import dataclasses
import logging

import cv2
import numpy as np
import pytest
import yaml
from extraction_helpers import write_video
from golden import PROJECT_ROOT

from co2net_pipeline.extraction.chunks import (
    FrameChunk,
    TvL1,
    flow_clip,
    frame_chunks,
    n_chunks,
    rgb_clip,
)
from co2net_pipeline.extraction.settings import ExtractionSettings
from co2net_pipeline.extraction.video import (
    VideoError,
    probe_video,
    resampled_frames,
    resize_short_side,
    resized_size,
)
from co2net_pipeline.params.schema import parse_group


def _frames(n: int, size: int = 8) -> list[np.ndarray]:
    """n frames whose pixels hold their index (to see which frame went where)."""
    return [np.full((size, size, 3), i, np.uint8) for i in range(n)]


@pytest.mark.parametrize(
    ("n", "chunks", "ends_exactly"),
    [(201, 12, False), (192, 12, True), (16, 1, True), (31, 1, False)],
)
def test_chunk_counts_and_the_frame_after_each_chunk(n, chunks, ends_exactly) -> None:
    found = list(frame_chunks(_frames(n)))
    assert len(found) == n_chunks(n) == chunks
    for k, chunk in enumerate(found):
        assert chunk.frames.shape == (16, 8, 8, 3)
        assert [int(f[0, 0, 0]) for f in chunk.frames] == list(range(16 * k, 16 * k + 16))
    assert all(int(c.next_frame[0, 0, 0]) == 16 * (k + 1) for k, c in enumerate(found[:-1]))
    assert (found[-1].next_frame is None) == ends_exactly


def test_fewer_frames_than_one_chunk_is_a_video_error() -> None:
    with pytest.raises(VideoError, match="too short: 15 frames after resampling"):
        list(frame_chunks(_frames(15)))


def _textured(shift: int, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (size, size + 8), np.uint8), (5, 5), 1.5)
    gray = base[:, 4 - shift : 4 - shift + size]
    return np.repeat(gray[:, :, None], 3, axis=2)


def test_flow_shortfall_repeats_the_last_flow_only_at_a_video_end() -> None:
    frames = np.stack([_textured(i % 3) for i in range(16)])
    with TvL1(workers=1) as tvl1:
        inside = flow_clip(FrameChunk(frames, _textured(1)), 16, tvl1)
        at_end = flow_clip(FrameChunk(frames, None), 16, tvl1)
    assert inside.shape == at_end.shape == (2, 16, 16, 16) and inside.dtype == np.float32
    np.testing.assert_array_equal(at_end[:, 15], at_end[:, 14])  # repeated
    np.testing.assert_array_equal(at_end[:, :15], inside[:, :15])
    assert not np.array_equal(inside[:, 15], inside[:, 14])


def test_flow_is_clipped_to_bound_and_scaled_to_unit_range() -> None:
    """A 1-pixel shift right gives x flow ≈ 1 / 20; a bound of 0.5 px clips it to exactly 1."""
    chunk = FrameChunk(np.stack([_textured(i % 2) for i in range(16)]), _textured(0))
    with TvL1(workers=2) as tvl1:
        flow = flow_clip(chunk, 16, tvl1, bound=20.0)
        clipped = flow_clip(chunk, 16, tvl1, bound=0.5, flow_before_crop=False)
    centre = flow[0, ::2, 4:12, 4:12]  # frame pairs 0→1 (shift right), inside the border
    assert 0.7 / 20 < float(np.median(centre)) < 1.3 / 20
    assert float(np.abs(flow[1, ::2, 4:12, 4:12]).mean()) < 0.2 / 20
    assert np.abs(clipped).max() <= 1.0 and float(np.median(clipped[0, ::2, 4:12, 4:12])) == 1.0


def test_rgb_clip_is_the_centre_crop_scaled_to_minus_one_one() -> None:
    frames = np.zeros((16, 6, 10, 3), np.uint8)
    frames[:, 1:5, 3:7] = 255
    clip = rgb_clip(FrameChunk(frames, None), 4)
    assert clip.shape == (3, 16, 4, 4) and clip.dtype == np.float32
    assert np.all(clip == 1.0)
    assert rgb_clip(FrameChunk(frames, None), 6).min() == -1.0


def test_resampling_by_presentation_time(tmp_path, caplog) -> None:
    """30 fps, 10 s → 250 frames at 25 fps; 10 fps, 3 s → 75 (each frame shown 2-3 times);
    a variable frame rate → frames by time (the last covers up to the video's end), with one
    WARNING line naming the file (the CLI shows warnings only)."""
    cases = [(write_video(tmp_path / "a30.mp4", 300, fps=30), 250)]
    cases.append((write_video(tmp_path / "b10.avi", 30, fps=10), 75))
    times = [0.0, 0.04, 0.08, 0.5, 0.54, 1.2, 1.24, 1.28, 1.32, 1.36]
    cases.append((write_video(tmp_path / "c_vfr.mkv", len(times), fps=25, times=times), 35))
    for path, expected in cases:
        frames = list(resampled_frames(path, 25.0))
        assert len(frames) == expected, path.name
        estimate = probe_video(path).expected_frames(25.0)
        assert abs(estimate - expected) <= 1, path.name
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="co2net_pipeline.extraction"):
        vfr = [round(f.time, 2) for f in resampled_frames(cases[2][0], 25.0)]
    assert vfr[:5] == [0.0, 0.04, 0.08, 0.08, 0.08] and vfr[13:14] == [0.5]
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and lines[0].startswith(f"{cases[2][0]} (video c_vfr): variable")


def test_a_truncated_video_is_extracted_as_far_as_it_decodes_with_a_warning(
    tmp_path, caplog
) -> None:
    """An .mkv cut in half keeps a readable header announcing 8 s: the decoded part is used
    and one WARNING line names the file; a whole file gives no warning."""
    whole = write_video(tmp_path / "whole.mkv", 200)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="co2net_pipeline.extraction"):
        assert len(list(resampled_frames(whole, 25.0))) == 200
        assert caplog.records == []
        frames = len(list(resampled_frames(cut, 25.0)))
    assert 16 < frames < 150
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"{cut} (video cut): decoded {frames / 25:.2f} s of the 8.00 s")


def test_resize_keeps_the_aspect_ratio_with_the_short_side_given(tmp_path) -> None:
    assert resized_size(320, 240, 256) == (341, 256)
    assert resized_size(240, 320, 256) == (256, 341)
    assert resized_size(1920, 1080, 256) == (455, 256)
    path = write_video(tmp_path / "v.mp4", 20, width=64, height=48)
    first = next(resize_short_side(resampled_frames(path, 25.0), 24))
    assert first.shape == (24, 32, 3) and first.dtype == np.uint8


def test_settings_schema_parameters_and_cli_share_their_defaults() -> None:
    """ExtractionSettings, the pydantic group, conf/base and the CLI's defaults agree."""
    from co2net_pipeline.cli import _EXTRACTION_DEFAULTS

    schema = parse_group("feature_extraction", {}).model_dump()
    settings = dataclasses.asdict(ExtractionSettings())
    assert set(schema) == set(settings) | {"rgb_weights", "flow_weights"}
    assert {k: schema[k] for k in settings} == settings
    conf = yaml.safe_load(
        (PROJECT_ROOT / "conf/base/parameters_feature_extraction.yml").read_text()
    )["feature_extraction"]
    assert conf == schema
    assert {k: schema[k] for k in _EXTRACTION_DEFAULTS} == _EXTRACTION_DEFAULTS
    with pytest.raises(ValueError, match="crop_size=300: must be <= short_side=256"):
        ExtractionSettings(crop_size=300)
