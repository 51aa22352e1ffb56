"""Full-size THUMOS14 on one GPU: training iterations and the whole test set, against the bf16 peak.

Features are random float32 at I3D width (2 x 1024) with the real THUMOS14 snippet counts
(shipped annotations: 200 train videos, 212 test videos); model, losses and schedule are the
`--env thumos14` settings. Rows:
  train fp32 / train bf16   `--iterations` steps of `training.train_model`, features on the GPU
  test set fp32 / bf16      `inference.run_inference` on all test videos, then
                            `proposals.localize_videos` (proposals) and
                            `evaluation.evaluate_detections` (mAP; meaningless on random features)
TFLOP/s counts the model's matmuls and convolutions (torch.utils.flop_counter) per step or per
snippet; "% bf16 peak" divides by the GPU's dense bf16 peak (table below, or --peak-tflops).
Run by benchmarks/gpu_check.sh (make gpu-check); `--device cpu --iterations 2 --test-videos 4`
is a smoke test of the script itself on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), first match of the device name wins.
BF16_PEAK_TFLOPS = (
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("RTX 4090", 165.0),
)


def bf16_peak(device_name: str) -> float | None:
    return next((tflops for key, tflops in BF16_PEAK_TFLOPS if key in device_name), None)


def _env_params(env: str = "thumos14") -> dict:
    from kedro.config import OmegaConfigLoader

    from co2net_pipeline.settings import CONFIG_LOADER_ARGS

    return OmegaConfigLoader(conf_source=str(ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)[
        "parameters"
    ]


def _features(lengths: np.ndarray, width: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(t), width), dtype=np.float32) for t in lengths]


def _model_flops(model: torch.nn.Module, x: torch.Tensor, backward: bool) -> int:
    """Matmul/conv FLOPs of one forward (and backward) pass on `x` (B, T, 2D)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        outputs = model(x)
        if backward:
            sum(t.float().sum() for t in outputs).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--test-videos", type=int, default=0, help="0: the whole test set")
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak override")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            f"gpu_check: error: --device {args.device}: torch {torch.__version__} sees no CUDA "
            "device (run benchmarks/gpu_check.sh, which installs the CUDA build)",
            file=sys.stderr,
        )
        return 2

    from co2net_pipeline.data.annotations import (
        expected_snippets,
        load_shipped_annotations,
        seconds_to_snippets,
    )
    from co2net_pipeline.method.inference import run_inference
    from co2net_pipeline.method.losses import LossConfig
    from co2net_pipeline.method.metric import evaluate_detections, subset_ground_truth
    from co2net_pipeline.method.model import ModelConfig, build_model
    from co2net_pipeline.method.proposals import ProposalParams, localize_videos
    from co2net_pipeline.method.sampler import make_sampling_plan, multi_hot
    from co2net_pipeline.method.training import train_model
    from co2net_pipeline.params.schema import parse_config

    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or (bf16_peak(name) if device.type == "cuda" else None)
    params = _env_params()
    ann = load_shipped_annotations("thumos14")
    videos = ann.videos
    lengths = np.maximum(expected_snippets(videos["duration_s"].to_numpy()), 1)
    train = videos["subset"] == params["snippet_sampling"]["train_subset"]
    test = videos["subset"] == params["snippet_sampling"]["test_subset"]
    model_cfg = ModelConfig.from_dict({**params["model"], "n_classes": len(ann.classlist)})
    width = 2 * model_cfg.feature_dim
    train_ids = videos.loc[train, "video_id"].tolist()
    labels = multi_hot(videos.loc[train, "labels"], ann.classlist)
    train_feats = dict(zip(train_ids, _features(lengths[train.to_numpy()], width, 0), strict=True))
    test_ids = videos.loc[test, "video_id"].tolist()
    if args.test_videos:
        test_ids = test_ids[: args.test_videos]
    test_len = dict(zip(videos["video_id"], lengths, strict=True))
    test_feats = dict(
        zip(test_ids, _features([test_len[v] for v in test_ids], width, 1), strict=True)
    )
    tp = params["training"]
    plan = make_sampling_plan(
        train_ids, labels, args.iterations, tp["batch_size"], tp["n_similar"], seed=tp["seed"]
    )
    probe = build_model(model_cfg).to(device)
    step_flops = _model_flops(
        probe.train(), torch.randn(tp["batch_size"], tp["max_seqlen"], width, device=device), True
    )
    snippet_flops = _model_flops(probe.eval(), torch.randn(1, 1000, width, device=device), False)
    snippet_flops /= 1000
    del probe

    rows = []

    def row(what: str, seconds: float, rate: str, flops: float) -> None:
        tflops = flops / seconds / 1e12
        share = f"{100 * tflops / peak:.1f}" if peak else "n/a"
        rows.append((what, f"{seconds:.2f}", rate, f"{tflops:.1f}", share))
        print(f"{what}: {seconds:.2f} s, {rate}, {tflops:.1f} TFLOP/s", flush=True)

    trained = None
    for bf16 in (False, True):
        cfg = parse_config(
            "training",
            {
                **tp,
                "max_iter": args.iterations,
                "interval": args.iterations + 1,
                "device": args.device,
                "bf16": bf16,
                "features_on_device": device.type == "cuda",
                "cpu_threads": None,
                "resume": False,
            },
        )
        started = time.perf_counter()
        result = train_model(
            train_feats,
            dict(zip(train_ids, labels, strict=True)),
            plan,
            model_cfg,
            LossConfig.from_dict(params["loss"]),
            cfg,
            progress=False,
        )
        wall = time.perf_counter() - started
        step = result.seconds_per_iteration
        row(
            f"train {'bf16' if bf16 else 'fp32'} ({args.iterations} it, {wall:.0f} s wall)",
            step * args.iterations,
            f"{1 / step:.1f} it/s",
            step_flops * args.iterations,
        )
        if trained is None:
            trained = result.model

    segments = ann.segments.assign(  # snippet units, as feature ingestion adds them
        start_snippet=seconds_to_snippets(ann.segments["t_start_s"]),
        end_snippet=seconds_to_snippets(ann.segments["t_end_s"]),
    )
    gt = subset_ground_truth(segments, videos, params["snippet_sampling"]["test_subset"])
    gt = gt[gt["video_id"].isin(test_ids)]
    prop = ProposalParams.from_dict(params["proposals"])
    snippets = sum(test_len[v] for v in test_ids)
    for bf16 in (False, True):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        outputs = run_inference(trained, test_feats, device, autocast_bf16=bf16)
        infer_s = time.perf_counter() - started
        started = time.perf_counter()
        detections = localize_videos(
            {v: (o["cas"], o["attention"]) for v, o in outputs.items()},
            ann.classlist,
            prop,
            ann.ambiguous if prop.ambiguous_filter else None,
        )
        proposals_s = time.perf_counter() - started
        started = time.perf_counter()
        result = evaluate_detections(
            detections[["video_id", "t_start", "t_end", "label", "score"]],
            gt,
            params["evaluation"]["tiou"],
        )
        eval_s = time.perf_counter() - started
        tag = "bf16" if bf16 else "fp32"
        row(
            f"test set {tag}: inference ({len(test_ids)} videos)",
            infer_s,
            f"{len(test_ids) / infer_s:.1f} videos/s",
            snippet_flops * snippets,
        )
        rows.append((f"test set {tag}: proposals", f"{proposals_s:.2f}", "", "", ""))
        average = params["evaluation"].get("selection_average", "0.1:0.7")
        rows.append(
            (
                f"test set {tag}: mAP (random features: {100 * result.average[average]:.1f})",
                f"{eval_s:.2f}",
                "",
                "",
                "",
            )
        )
        rows.append((f"test set {tag}: total", f"{infer_s + proposals_s + eval_s:.2f}", "", "", ""))

    print(f"\n{name}; bf16 peak {peak if peak else 'unknown'} TFLOP/s; torch {torch.__version__}")
    print(
        f"model FLOPs: {step_flops / 1e9:.1f} GFLOP per training step, "
        f"{snippet_flops / 1e6:.1f} MFLOP per inference snippet\n"
    )
    print("| stage | seconds | throughput | TFLOP/s | % bf16 peak |")
    print("|---|---:|---|---:|---:|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
