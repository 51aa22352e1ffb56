"""`make bench`: every benchmark, one table (stage, device, impl, median, speed-up, throughput, memory).

Writes benchmarks/results/all.csv. Timings depend on the machine: the table says which.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import eval_loop_speed  # noqa: E402
import localize_speed  # noqa: E402
import train_speed  # noqa: E402


def machine() -> str:
    import os

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-iterations", type=int, default=3, help="timed steps per run")
    parser.add_argument("--train-rounds", type=int, default=3, help="runs per implementation")
    parser.add_argument("--no-baseline", action="store_true", help="skip the slow reference loops")
    args = parser.parse_args(argv)

    rows = []
    for r in train_speed.run(iterations=args.train_iterations, rounds=args.train_rounds):
        rows.append(
            {
                "stage": "train step (10x500x2048)",
                "device": r["device"],
                "impl": r["impl"],
                "median_s": r["median_s"],
                "runs": r["runs"],
                "throughput": f"{10 * 500 / r['median_s']:.0f} snippets/s",
                "peak_mem_mb": r["peak_gpu_mb"] if r["device"] != "cpu" else r["peak_rss_mb"],
            }
        )
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    test_set_rows = [
        r
        for device in devices
        for r in eval_loop_speed.run(args.repeats, not args.no_baseline, device=device, output=None)
    ]
    for r in test_set_rows:
        rows.append(
            {
                "stage": "test set: inference+proposals+mAP (212 videos)",
                "device": r["device"],
                "impl": r["impl"],
                "median_s": r["median_s"],
                "runs": r["runs"],
                "throughput": f"{r['snippets_per_s']:.0f} snippets/s",
                "peak_mem_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    for r in localize_speed.run(repeats=args.repeats, baseline=not args.no_baseline):
        rows.append(
            {
                "stage": f"{r['stage']} (212 videos)",
                "device": "cpu",
                "impl": r["impl"],
                "median_s": r["median_s"],
                "runs": r["runs"],
                "throughput": f"{r['items'] / r['median_s']:.0f} detections/s",
                "peak_mem_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    table = pd.DataFrame(rows)
    table.insert(5, "speedup_vs_reference", speedups(table))
    out = HERE / "results" / "all.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(f"machine: {machine()}")
    with pd.option_context("display.width", 220, "display.float_format", "{:.4g}".format):
        print(table.to_string(index=False))
    print(f"wrote {out}")
    return 0


def speedups(table: pd.DataFrame) -> pd.Series:
    """Reference median / this row's median, per stage and device (NaN without a reference)."""
    is_reference = table["impl"].str.startswith("reference")
    reference = table[is_reference].set_index(["stage", "device"])["median_s"]
    keys = pd.MultiIndex.from_frame(table[["stage", "device"]])
    return pd.Series(reference.reindex(keys).to_numpy() / table["median_s"].to_numpy())


if __name__ == "__main__":
    raise SystemExit(main())
