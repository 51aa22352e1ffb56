"""Full-width rehearsal of the real-feature path, stage by stage, with time and peak memory.

For THUMOS14 and/or ActivityNet1.2 (`--dataset`):
  synthesize  full-width (2 x 1024) SYNTHETIC W-TALC features for the shipped annotations
              (`data.synthetic.synthesize`, streamed); the annotation folder is then removed, so
              ingestion takes the README's "features file alone" layout (shipped annotations)
  ingest      `data.ingest.ingest`: validation + HDF5 feature store (streamed, one video at a time)
  train       `training.train_model` for `--iterations` steps with the environment's settings
              (conf/base + conf/<env> parameters), features read through `FeatureStore.view`
              under `training.feature_memory_gb = --memory-budget`
  infer       `inference.run_inference` on the whole test subset, read video by video
  proposals   `proposals.localize_videos` with the environment's proposal settings
  evaluate    `evaluation.evaluate_detections` at the environment's tIoU thresholds
Each stage runs in its own process, so "peak RSS" is that stage's own high-water mark
(imports included). Throughput: what the stage processed per second. The mAP is of a model
trained for a few steps on synthetic features: it says the chain runs, nothing about CO2-Net.

Disk: the feature file plus the store (THUMOS14 2.2 GB, ActivityNet1.2 21 GB at full width),
written under `--workdir` (default data/rehearsal) and deleted at the end unless `--keep`.

    .venv/bin/python benchmarks/rehearsal.py [--dataset thumos14|activitynet12|both]
        [--iterations 20] [--memory-budget 2] [--feature-dim 1024] [--stages ...] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("synthesize", "ingest", "train", "infer", "proposals", "evaluate")
ENVS = {"thumos14": "Thumos14reduced", "activitynet12": "ActivityNet1.2"}
_GB = 1 << 30


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / _GB


def _env_params(env: str) -> dict:
    """conf/base parameters merged with conf/<env>, as `kedro run --env <env>` sees them."""
    from kedro.config import OmegaConfigLoader

    from co2net_pipeline.settings import CONFIG_LOADER_ARGS  # the project's merge strategy

    loader = OmegaConfigLoader(conf_source=str(ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)
    return loader["parameters"]


def _paths(workdir: Path, env: str) -> dict[str, Path]:
    root = workdir / env
    return {
        "raw": root / "raw",
        "store": root / "features.h5",
        "tables": root / "tables",
        "model": root / "model.pt",
        "cas": root / "test_cas.h5",
        "detections": root / "detections.parquet",
    }


def _tables(paths: dict[str, Path], name: str):
    import pandas as pd

    from co2net_pipeline.data.ingest import dataset_slug, read_videos_table

    slug = dataset_slug(name)
    videos = read_videos_table(paths["tables"] / f"{slug}_videos.parquet")
    segments = pd.read_parquet(paths["tables"] / f"{slug}_segments.parquet")
    classlist = pd.read_parquet(paths["tables"] / f"{slug}_classlist.parquet")["name"].tolist()
    ambiguous = pd.read_parquet(paths["tables"] / f"{slug}_ambiguous.parquet")
    return videos, segments, [str(c) for c in classlist], ambiguous


def stage_synthesize(args, env: str, params: dict, paths: dict) -> dict:
    from co2net_pipeline.data.synthetic import synthesize

    manifest = synthesize(paths["raw"], ENVS[env], {"feature_dim": args.feature_dim, "seed": 0})
    for folder in paths["raw"].glob("*-Annotations"):
        shutil.rmtree(folder)  # the README layout: the features file alone
    size = sum(p.stat().st_size for p in paths["raw"].glob("*.npy"))
    return {"bytes": size, "videos": manifest.get("n_videos")}


def stage_ingest(args, env: str, params: dict, paths: dict) -> dict:
    from co2net_pipeline.data.ingest import ingest

    ing = params["feature_ingestion"]
    result = ingest(
        paths["raw"],
        store_path=paths["store"],
        tables_dir=paths["tables"],
        report_dir=paths["tables"],
        params={**(ing.get("validation") or {}), "feature_dim": args.feature_dim},
        force=True,
    )
    size = sum(p.stat().st_size for p in paths["raw"].glob("*.npy"))
    return {
        "bytes": size,
        "videos": len(result.videos),
        "note": result.report.get("ambiguous_intervals", ""),
    }


def stage_train(args, env: str, params: dict, paths: dict) -> dict:
    import numpy as np
    import torch

    from co2net_pipeline.data.store import FeatureStore
    from co2net_pipeline.method import feature_bank
    from co2net_pipeline.method.losses import LossConfig
    from co2net_pipeline.method.model import ModelConfig
    from co2net_pipeline.method.sampler import listed_videos, make_sampling_plan, multi_hot
    from co2net_pipeline.method.training import train_model
    from co2net_pipeline.params.schema import parse_config

    videos, _, classlist, _ = _tables(paths, ENVS[env])
    sampling = params["snippet_sampling"]
    listed = listed_videos(videos, sampling.get("dataset_class", "thumos14"))
    train = videos[(videos["subset"] == sampling["train_subset"]) & listed]
    ids = train["video_id"].tolist()
    labels = multi_hot(train["labels"], classlist)
    tp = params["training"]
    cfg = parse_config(
        "training",
        {
            **tp,
            "max_iter": args.iterations,
            "interval": args.iterations + 1,
            "feature_memory_gb": args.memory_budget,
            "cpu_threads": args.threads or None,
            "device": "cpu",
            "resume": False,
        },
    )
    model_cfg = ModelConfig.from_dict(
        {**params["model"], "feature_dim": args.feature_dim, "n_classes": len(classlist)}
    )
    plan = make_sampling_plan(
        ids, labels, cfg.max_iter, cfg.batch_size, cfg.n_similar, seed=cfg.seed
    )
    # Time spent assembling batches (store reads included), to show the step is not I/O bound.
    gather_seconds = [0.0]
    banks = []
    original = feature_bank.FeatureBank.gather

    def timed_gather(self, videos, idx):
        started = time.perf_counter()
        out = original(self, videos, idx)
        gather_seconds[0] += time.perf_counter() - started
        if not banks:
            banks.append(self)
        return out

    feature_bank.FeatureBank.gather = timed_gather
    store = FeatureStore(paths["store"])
    started = time.perf_counter()
    result = train_model(
        store.view(ids),
        dict(zip(ids, labels, strict=True)),
        plan,
        model_cfg,
        LossConfig.from_dict(params["loss"]),
        cfg,
        progress=False,
    )
    seconds = time.perf_counter() - started
    torch.save(
        {
            "state_dict": result.state_dict,
            "model_config": model_cfg.to_dict(),
            "classlist": classlist,
        },
        paths["model"],
    )
    bank = banks[0] if banks else None
    return {
        "iterations": args.iterations,
        "note": (
            f"bank {bank.mode if bank else '?'} ({bank.nbytes / _GB:.2f} GB of train features), "
            f"batch assembly {100 * gather_seconds[0] / seconds:.1f} % of the time, "
            f"loss {float(np.asarray(result.history['total'])[-1]):.3f}"
        ),
    }


def stage_infer(args, env: str, params: dict, paths: dict) -> dict:
    import torch

    from co2net_pipeline.data.store import FeatureStore, write_array_store
    from co2net_pipeline.method.inference import run_inference
    from co2net_pipeline.method.model import ModelConfig, build_model

    videos, _, _, _ = _tables(paths, ENVS[env])
    test_subset = params["snippet_sampling"]["test_subset"]
    ids = videos.loc[videos["subset"] == test_subset, "video_id"].tolist()
    artifact = torch.load(paths["model"], weights_only=True)
    model = build_model(ModelConfig.from_dict(artifact["model_config"]))
    model.load_state_dict(artifact["state_dict"])
    store = FeatureStore(paths["store"])
    view = store.view(ids)
    outputs = run_inference(model, view, "cpu")
    write_array_store(
        paths["cas"],
        {v: {"cas": o["cas"], "attention": o["attention"]} for v, o in outputs.items()},
    )
    return {"videos": len(ids), "bytes": view.nbytes}


def stage_proposals(args, env: str, params: dict, paths: dict) -> dict:
    from co2net_pipeline.data.store import read_array_store
    from co2net_pipeline.method.proposals import ProposalParams, localize_videos

    _, _, classlist, ambiguous = _tables(paths, ENVS[env])
    outputs = {v: (a["cas"], a["attention"]) for v, a in read_array_store(paths["cas"]).items()}
    prop = ProposalParams.from_dict(params["proposals"])
    detections = localize_videos(
        outputs, classlist, prop, ambiguous if prop.ambiguous_filter else None
    )
    detections.to_parquet(paths["detections"], index=False)
    state = (
        f"on ({len(ambiguous)} intervals)" if prop.ambiguous_filter and len(ambiguous) else "off"
    )
    return {
        "videos": len(outputs),
        "note": f"{len(detections)} detections, ambiguous filter {state}",
    }


def stage_evaluate(args, env: str, params: dict, paths: dict) -> dict:
    import pandas as pd

    from co2net_pipeline.method.metric import evaluate_detections, subset_ground_truth

    videos, segments, _, _ = _tables(paths, ENVS[env])
    ev = params["evaluation"]
    detections = pd.read_parquet(paths["detections"])
    gt = subset_ground_truth(segments, videos, params["snippet_sampling"]["test_subset"])
    result = evaluate_detections(
        detections[["video_id", "t_start", "t_end", "label", "score"]], gt, ev["tiou"]
    )
    key = ev.get("selection_average", "0.1:0.7")
    return {
        "videos": int(gt["video_id"].nunique()),
        "note": f"mAP@{key} {100 * float(result.average[key]):.2f} (synthetic, {args.iterations} steps)",
    }


def run_stage(args) -> None:
    """Child process: one stage, one JSON line on stdout."""
    env = args.dataset
    params = _env_params(env)
    paths = _paths(Path(args.workdir), env)
    paths["raw"].mkdir(parents=True, exist_ok=True)
    # Imports before the clock starts: the seconds are the stage's work (the peak RSS
    # includes them).
    import torch

    import co2net_pipeline.data.ingest  # noqa: F401
    import co2net_pipeline.method.inference  # noqa: F401
    import co2net_pipeline.method.metric  # noqa: F401
    import co2net_pipeline.method.proposals  # noqa: F401
    import co2net_pipeline.method.training  # noqa: F401

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    out = globals()[f"stage_{args.stage}"](args, env, params, paths)
    out["seconds"] = time.perf_counter() - started
    out["peak_rss_gb"] = _peak_rss_gb()
    print("REHEARSAL " + json.dumps(out))


def _throughput(row: dict) -> str:
    s = max(row["seconds"], 1e-9)
    if row.get("iterations"):
        return f"{row['iterations'] / s:.2f} it/s"
    parts = []
    if row.get("bytes"):
        parts.append(f"{row['bytes'] / (1 << 20) / s:.0f} MB/s")
    if row.get("videos"):
        parts.append(f"{row['videos'] / s:.0f} videos/s")
    return ", ".join(parts)


def _estimate_bytes(env: str, dim: int) -> int:
    from co2net_pipeline.data.annotations import expected_snippets, load_shipped_annotations

    durations = load_shipped_annotations(env).videos["duration_s"].to_numpy()
    return int(expected_snippets(durations).sum()) * 2 * dim * 4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="both", choices=[*ENVS, "both"])
    parser.add_argument("--workdir", default=str(ROOT / "data" / "rehearsal"))
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument(
        "--memory-budget", type=float, default=2.0, help="training.feature_memory_gb"
    )
    parser.add_argument("--feature-dim", type=int, default=1024, help="channels per modality")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0: torch's default, all cores)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the written files")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        run_stage(args)
        return 0

    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    envs = list(ENVS) if args.dataset == "both" else [args.dataset]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    need = sum(2 * _estimate_bytes(env, args.feature_dim) for env in envs)
    free = shutil.disk_usage(workdir).free
    if "synthesize" in stages and need > 0.9 * free:
        print(
            f"rehearsal: error: {workdir}: needs about {need / _GB:.1f} GB (feature file + store), "
            f"{free / _GB:.1f} GB free",
            file=sys.stderr,
        )
        return 2
    rows = []
    started = time.perf_counter()
    try:
        for env in envs:
            for stage in stages:
                cmd = [sys.executable, __file__, "--stage", stage, "--dataset", env]
                cmd += ["--workdir", str(workdir), "--iterations", str(args.iterations)]
                cmd += ["--memory-budget", str(args.memory_budget)]
                cmd += ["--feature-dim", str(args.feature_dim), "--threads", str(args.threads)]
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ}
                )
                line = next(
                    (x for x in proc.stdout.splitlines() if x.startswith("REHEARSAL ")), None
                )
                if proc.returncode != 0 or line is None:
                    sys.stderr.write(proc.stderr[-4000:])
                    print(f"rehearsal: error: {env} {stage} failed (exit {proc.returncode})")
                    return 1
                row = {
                    "dataset": env,
                    "stage": stage,
                    **json.loads(line.removeprefix("REHEARSAL ")),
                }
                rows.append(row)
                print(
                    f"{env:14s} {stage:10s} {row['seconds']:8.1f} s  {row['peak_rss_gb']:6.2f} GB  "
                    f"{_throughput(row)}  {row.get('note', '')}",
                    flush=True,
                )
    finally:
        if not args.keep:
            for env in envs:
                shutil.rmtree(workdir / env, ignore_errors=True)
    total = time.perf_counter() - started
    print(
        f"\nRehearsal: feature width 2 x {args.feature_dim}, {args.iterations} training steps, "
        f"training.feature_memory_gb = {args.memory_budget}; {total / 60:.1f} min in all\n"
    )
    print("| dataset | stage | seconds | peak RSS (GB) | throughput | notes |")
    print("|---|---|---:|---:|---|---|")
    for row in rows:
        print(
            f"| {row['dataset']} | {row['stage']} | {row['seconds']:.1f} | "
            f"{row['peak_rss_gb']:.2f} | {_throughput(row)} | {row.get('note', '')} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
