"""Cost of the test curve (`evaluation.test_curve_every`) at full THUMOS14 size.

One curve point is one `selection.DetectionScorer` pass, exactly what training calls: inference
over the 212 test videos (71,804 snippets, full-size model), proposals, mAP. Inputs are those
of `eval_loop_speed.py` (real video lengths, seeded features, a probed full-size model). Prints
seconds per pass and what the reference schedule (5000 iterations, a point every 200 = 25
points) adds to a training run, on every available device.

    .venv/bin/python benchmarks/test_curve_cost.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_loop_speed import THUMOS14_TIOU, probed_model, thumos_test_features  # noqa: E402
from run_all import machine  # noqa: E402

from co2net_pipeline.data.annotations import load_shipped_annotations  # noqa: E402
from co2net_pipeline.method.proposals import ProposalParams  # noqa: E402
from co2net_pipeline.method.selection import DetectionScorer  # noqa: E402
from co2net_pipeline.reports.evaluation_files import load_ground_truth  # noqa: E402


def run(repeats: int = 3, iterations: int = 5000, every: int = 200) -> list[dict]:
    features, classlist = thumos_test_features(0)
    ground_truth, _, _ = load_ground_truth("thumos14", "test", "snippets")
    ambiguous = load_shipped_annotations("thumos14").ambiguous
    base = probed_model(features, classlist, 0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        model = base.to(device).eval()
        scorer = DetectionScorer(
            features, classlist, ProposalParams(), ground_truth, THUMOS14_TIOU, ambiguous, device
        )
        scorer(model)  # warm-up: kernel selection, allocator
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            scorer(model)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        per_pass = statistics.median(times)
        points = iterations // every + 1  # every N iterations, plus the last
        rows.append(
            {
                "device": device,
                "seconds_per_pass": per_pass,
                "points": points,
                "added_seconds": per_pass * points,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = run(args.repeats)
    print(f"machine: {machine()}")
    print("| device | s per test-curve point (median) | points (5000 it, every 200) | added s |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['device']} | {r['seconds_per_pass']:.2f} | {r['points']} | "
            f"{r['added_seconds']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
