"""`make seed-study`: train_eval over several seeds and both batch streams, one table.

Each run is a plain `kedro run --pipeline=train_eval` in a scratch copy of the project (its own
data/, mlflow.db), so the numbers are what a user gets from the same command. The synthetic
data is generated once in the copy and its sha256 printed: runs on two machines are only
comparable when the digests agree.

    .venv/bin/python benchmarks/seed_study.py --seeds 3552 1 2 3 4 --rng original plan
    # another CPU kind on this one: ATen, oneDNN and NumPy limited to AVX2
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python benchmarks/seed_study.py ...

Prints one row per (stream, seed) with avg mAP 0.1:0.5 / 0.1:0.7 / 0.1:0.9 of the selected
model (last iteration by default) and, with --test-curve-every, the best test-set checkpoint
("as papers report"); then mean ± sample std per stream. Writes `<workdir>/seed_study.csv`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
KEDRO = Path(sys.executable).with_name("kedro")
AVERAGES = ("0.1-0.5", "0.1-0.7", "0.1-0.9")


def machine() -> str:
    import torch

    isa = torch.backends.cpu.get_cpu_capability()
    env = {
        k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ
    }
    return f"{platform.machine()}, torch CPU capability {isa}, {os.cpu_count()} cores {env or ''}"


def prepare(workdir: Path) -> str:
    """A copy of the project's conf/ with the synthetic data written; returns its sha256."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", workdir / "pyproject.toml")
    shutil.copytree(ROOT / "conf", workdir / "conf", ignore=shutil.ignore_patterns("local"))
    (workdir / "conf" / "local").mkdir(exist_ok=True)
    (workdir / "src").mkdir()
    subprocess.run(
        [str(KEDRO), "run", "--pipeline=synthetic_data"],
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    digest = hashlib.sha256()
    for path in sorted((workdir / "data/01_raw/synthetic").rglob("*.npy")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run_one(template: Path, rng: str, seed: int, params: str) -> dict:
    """One train_eval run in its own copy of the prepared project."""
    work = template.parent / f"{rng}_{seed}"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(template, work, ignore=shutil.ignore_patterns("mlflow.db", "mlruns"))
    overrides = (
        f"training.seed={seed},snippet_sampling.seed={seed},snippet_sampling.rng={rng},"
        f"training.progress=false{',' + params if params else ''}"
    )
    t0 = time.perf_counter()
    log = work / "run.log"
    with log.open("w") as out:
        done = subprocess.run(
            [str(KEDRO), "run", "--pipeline=train_eval", "--params", overrides],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if done.returncode:
        raise RuntimeError(f"{rng} seed {seed}: kedro run failed, see {log}")
    import mlflow

    from co2net_pipeline.tracking.runs import BEST_ON_TEST_PREFIX, SELECTED_PREFIX

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("co2net")
    run = client.search_runs([experiment.experiment_id], max_results=1)[0]
    metrics = run.data.metrics
    row = {"stream": rng, "seed": seed, "minutes": (time.perf_counter() - t0) / 60}
    for avg in AVERAGES:
        row[f"last {avg}"] = 100 * metrics[f"{SELECTED_PREFIX}avg_{avg}"]
    if f"{BEST_ON_TEST_PREFIX}iteration" in metrics:
        for avg in AVERAGES:
            row[f"best-on-test {avg}"] = 100 * metrics[f"{BEST_ON_TEST_PREFIX}avg_{avg}"]
        row["best iteration"] = int(metrics[f"{BEST_ON_TEST_PREFIX}iteration"])
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3552, 1, 2, 3, 4])
    parser.add_argument(
        "--rng",
        nargs="+",
        default=["original", "plan"],
        choices=["original", "plan"],
        help="batch streams to compare",
    )
    parser.add_argument(
        "--test-curve-every",
        type=int,
        default=0,
        help="also score the test set every N iterations (best_on_test)",
    )
    parser.add_argument("--params", default="", help="extra kedro --params overrides")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each uses 1 thread)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/co2net_seed_study"))
    args = parser.parse_args(argv)

    os.environ.setdefault("DO_NOT_TRACK", "true")
    template = args.workdir / "template"
    digest = prepare(template)
    params = ",".join(
        p for p in (args.params, f"evaluation.test_curve_every={args.test_curve_every}") if p
    )
    jobs = [(rng, seed) for rng in args.rng for seed in args.seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda job: run_one(template, job[0], job[1], params), jobs))
    table = pd.DataFrame(rows)
    table.to_csv(args.workdir / "seed_study.csv", index=False)
    numeric = [c for c in table.columns if c not in ("stream", "seed", "minutes", "best iteration")]
    summary = table.groupby("stream")[numeric].agg(["mean", "std"])
    pd.set_option("display.width", 200)
    print(f"machine: {machine()}")
    print(f"synthetic data sha256: {digest}")
    print(table.round(2).to_string(index=False))
    print("\nmean ± sample std over seeds (avg mAP %, SYNTHETIC data):")
    for stream, values in summary.iterrows():
        cells = [f"{c} {values[(c, 'mean')]:.2f} ± {values[(c, 'std')]:.2f}" for c in numeric]
        print(f"  {stream}: " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
