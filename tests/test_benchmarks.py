"""The benchmarks compare equal work: ours and the reference-loop transcriptions agree."""

from __future__ import annotations

import importlib.util

import numpy as np
import torch

from co2net_pipeline.data.annotations import load_shipped_annotations
from co2net_pipeline.method.model import ModelConfig, build_model
from co2net_pipeline.reports.evaluation_files import load_ground_truth
from tests.golden import PROJECT_ROOT


def _load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eval_loop_ours_and_reference_loop_agree(one_torch_thread) -> None:
    bench = _load_benchmark("eval_loop_speed")
    annotations = load_shipped_annotations("thumos14").subset("test")
    ground_truth, _, _ = load_ground_truth("thumos14", "test", "snippets")
    classlist = list(annotations.classlist)
    rng = np.random.default_rng(0)
    videos = list(annotations.videos["video_id"][:12])
    features = {
        v: rng.standard_normal((int(rng.integers(30, 200)), 32), np.float32) for v in videos
    }
    torch.manual_seed(0)
    model = build_model(ModelConfig(feature_dim=16, attention_hidden=16)).eval()
    ambiguous = annotations.ambiguous
    n_ours, map_ours = bench.ours(model, features, classlist, ambiguous, ground_truth, False, "cpu")
    n_ref, map_ref = bench.reference_loop(
        bench.load_reference_loops(), model, features, classlist, ambiguous, ground_truth, "cpu"
    )
    assert n_ours == n_ref > 0
    assert abs(map_ours - map_ref) < 1e-3  # equal-tIoU ties may be ordered differently


def test_extraction_speed_prints_a_row_per_stage(capsys) -> None:
    """`benchmarks/extraction_speed.py` on one tiny chunk: every stage timed and extrapolated."""
    bench = _load_benchmark("extraction_speed")
    tiny = ["--seconds", "0.8", "--short-side", "24", "--crop-size", "16", "--flow-workers", "1"]
    assert bench.main(tiny) == 0
    out = capsys.readouterr().out
    for row in ("| decode + resample + resize | cpu |", "| TV-L1 flow (1 thread) | cpu |"):
        assert row in out
    assert "| I3D RGB | cpu |" in out and "| I3D FLOW | cpu |" in out
    assert "a THUMOS14-sized set (~24 h of video) would take" in out
