"""Whole test-set evaluation at THUMOS14 scale: inference + proposals + mAP, ours vs the reference loop.

The 212 THUMOS14 test videos with their real snippet counts T = round(duration·25/16) (71,804
snippets), seeded synthetic features of width 2048 (`thumos_test_features`), and a full-size
CO2Net (D = 1024, C = 20) whose read-out layers are fitted so that its CAS and attention follow
the ground truth (`probed_model`): the cost of a forward pass does not depend on the weights,
but the cost of proposals and, above all, of the reference's per-prediction evaluation depends
on where the detections fall. Timed end to end on the same inputs, each median of `repeats` runs:

- "ours": `run_inference` (whole videos in padded batches of similar length, padding masked,
  inference mode), then
  `localize_videos` and `evaluate_detections` (vectorised), optionally with bf16 autocast;
- "reference loop": a plain transcription of the reference's test loop: one video at a time
  (float32 tensor, forward under no_grad, outputs to NumPy), per-threshold / per-class /
  per-run proposal loops with soft-NMS, the ambiguous-interval filter, then the ActivityNet
  evaluator's per-prediction matching (`reference_loops.py`).

The detection count and the mean mAP are printed (the read-outs are fitted on test videos, so
the mAP says nothing about CO2-Net). Writes benchmarks/results/eval_loop_speed.csv.

    .venv/bin/python benchmarks/eval_loop_speed.py [--repeats 3] [--no-baseline] [--no-bf16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from co2net_pipeline.data.annotations import load_shipped_annotations
from co2net_pipeline.method.inference import run_inference
from co2net_pipeline.method.metric import THUMOS14_TIOU, evaluate_detections
from co2net_pipeline.method.model import ModelConfig, build_model
from co2net_pipeline.method.proposals import ProposalParams, localize_videos
from co2net_pipeline.method.training import bf16_is_fast
from co2net_pipeline.reports.evaluation_files import load_ground_truth

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from localize_speed import (  # noqa: E402
    DETECTION_COLUMNS,
    ambiguous_by_video,
    load_reference_loops,
    reference_video_rows,
    thumos_test_videos,
    timed,
)

RESULTS_CSV = HERE / "results" / "eval_loop_speed.csv"
FEATURE_WIDTH = 2048


def thumos_test_features(seed: int = 0) -> tuple[dict[str, np.ndarray], list[str]]:
    """video_id -> (T, 2048) float32 features of the THUMOS14 test videos (real T): noise plus,
    inside every ground-truth segment, a direction of its class and a shared "action" one."""
    classlist = list(load_shipped_annotations("thumos14").classlist)
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((len(classlist) + 1, FEATURE_WIDTH), dtype=np.float32)
    features = {}
    for vid, t, spans in thumos_test_videos():
        feat = rng.standard_normal((t, FEATURE_WIDTH), dtype=np.float32)
        for s, e, label in spans:
            feat[s:e] += directions[classlist.index(label)] + directions[-1]
        features[vid] = feat
    return features, classlist


def probed_model(features: dict[str, np.ndarray], classlist: list[str], seed: int = 0):
    """A full-size CO2Net whose outputs look like a trained model's, so that proposals and
    evaluation see realistic detections: random body (seeded), and least-squares read-outs
    (the classifier's last conv and both attention units' last conv) fitted on every 8th snippet
    of 40 test videos to the ground truth. Only its cost matters here."""
    torch.manual_seed(seed)
    # the reference THUMOS14 sizes (ModelConfig's defaults are conf/base's CPU-sized model)
    model = build_model(ModelConfig(feature_dim=1024, attention_hidden=512)).eval()
    spans_of = {vid: spans for vid, _, spans in thumos_test_videos()}
    layers = {
        "cas": (model.classifier[2], model.classifier[4]),
        "v_atn": (model.vAttn.attention[4], model.vAttn.attention[5]),
        "f_atn": (model.fAttn.attention[4], model.fAttn.attention[5]),
    }
    hidden: dict[str, list[torch.Tensor]] = {k: [] for k in layers}
    hooks = [
        source.register_forward_hook(lambda m, i, o, k=k: hidden[k].append(o[0, :, ::8].T))
        for k, (source, _) in layers.items()
    ]
    targets = []
    with torch.inference_mode():
        for vid in list(features)[:40]:
            feat = features[vid]
            model(torch.from_numpy(feat)[None])
            target = np.zeros((len(feat), len(classlist) + 1), np.float32)
            target[:, -1] = 1
            for s, e, label in spans_of[vid]:
                target[s:e, classlist.index(label)], target[s:e, -1] = 1, 0
            targets.append(torch.from_numpy(target[::8]))
    for hook in hooks:
        hook.remove()
    y = torch.cat(targets)
    goals = {"cas": 8 * y - 4, "v_atn": 6 * (1 - y[:, -1:]) - 3, "f_atn": 6 * (1 - y[:, -1:]) - 3}
    with torch.no_grad():
        for key, (_, readout) in layers.items():
            h = torch.cat(hidden[key])
            h1 = torch.cat((h, torch.ones(len(h), 1)), dim=1)
            ridge = h1.T @ h1 + 1e-2 * torch.eye(h1.shape[1])
            w = torch.linalg.solve(ridge, h1.T @ goals[key])  # (hidden + 1, outputs)
            readout.weight.copy_(w[:-1].T.unsqueeze(-1))
            readout.bias.copy_(w[-1])
    return model


def ours(model, features, classlist, ambiguous, ground_truth, bf16: bool, device: str):
    outputs = run_inference(model, features, device, batching="padded", autocast_bf16=bf16)
    cas_attention = {vid: (o["cas"], o["attention"]) for vid, o in outputs.items()}
    detections = localize_videos(cas_attention, classlist, ProposalParams(), ambiguous)
    predictions = detections[["video_id", "t_start", "t_end", "label", "score"]]
    result = evaluate_detections(predictions, ground_truth, THUMOS14_TIOU)
    return len(predictions), float(np.mean(list(result.map.values())))


def reference_loop(ref, model, features, classlist, ambiguous, ground_truth, device: str):
    by_video = ambiguous_by_video(ambiguous)
    model.eval().to(device)
    rows = []
    for vid, feat in features.items():  # one video at a time, as the reference's test()
        x = torch.from_numpy(feat).float().to(device).unsqueeze(0)
        with torch.no_grad():
            out = model(x)
        cas = out.cas[0].cpu().numpy()
        attention = out.attn[0, :, 0].cpu().numpy()
        rows += reference_video_rows(ref, vid, cas, attention, by_video.get(vid, []), classlist)
    predictions = pd.DataFrame(rows, columns=DETECTION_COLUMNS)
    ap = ref.reference_evaluate(predictions, ground_truth, THUMOS14_TIOU)
    return len(predictions), float(ap.mean(axis=0).mean())


def run(
    repeats: int = 3,
    baseline: bool = True,
    bf16: bool = True,
    seed: int = 0,
    device: str = "cpu",
    output: Path | None = RESULTS_CSV,
) -> list[dict]:
    """Rows {impl, device, median_s, min_s, runs, detections, avg_map, ratio, snippets_per_s};
    ratio = reference loop median / this row's median (higher is better)."""
    features, classlist = thumos_test_features(seed)
    n_snippets = sum(len(f) for f in features.values())
    ambiguous = load_shipped_annotations("thumos14").ambiguous
    ground_truth, _, _ = load_ground_truth("thumos14", "test", "snippets")
    model = probed_model(features, classlist, seed).to(device)

    fast_bf16 = bf16 and bf16_is_fast(device)
    variants = [("ours", False)] + ([("ours (bf16)", True)] if fast_bf16 else [])
    rows = []
    for name, use_bf16 in variants:
        ours(
            model,
            {k: features[k] for k in list(features)[:3]},
            classlist,
            ambiguous,
            ground_truth,
            use_bf16,
            device,
        )  # warm-up: oneDNN primitive creation
        times, (n_det, avg) = timed(
            lambda b=use_bf16: ours(model, features, classlist, ambiguous, ground_truth, b, device),
            repeats,
        )
        rows.append({"impl": name, "times": times, "detections": n_det, "avg_map": avg})
    if baseline:
        ref = load_reference_loops()
        times, (n_det, avg) = timed(
            lambda: reference_loop(
                ref, model, features, classlist, ambiguous, ground_truth, device
            ),
            1,
        )
        rows.append({"impl": "reference loop", "times": times, "detections": n_det, "avg_map": avg})
    ref_median = next(
        (statistics.median(r["times"]) for r in rows if r["impl"] == "reference loop"), np.nan
    )
    device_name = torch.cuda.get_device_name(device) if device.startswith("cuda") else device
    table = []
    for r in rows:
        median = statistics.median(r["times"])
        table.append(
            {
                "impl": r["impl"],
                "device": device_name,
                "median_s": median,
                "min_s": min(r["times"]),
                "runs": len(r["times"]),
                "detections": r["detections"],
                "avg_map": r["avg_map"],
                "ratio": ref_median / median,
                "snippets_per_s": n_snippets / median,
            }
        )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(table).to_csv(output, index=False)
    return table


def format_rows(rows: list[dict]) -> str:
    lines = [
        f"{'impl':<15} {'device':<10} {'median s':>9} {'min s':>8} {'runs':>5} {'detections':>10} "
        f"{'avg mAP':>8} {'speed-up':>8}"
    ]
    for r in rows:
        lines.append(
            f"{r['impl']:<15} {r['device']:<10} {r['median_s']:>9.2f} {r['min_s']:>8.2f} "
            f"{r['runs']:>5} {r['detections']:>10} {r['avg_map']:>8.4f} {r['ratio']:>8.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-baseline", action="store_true", help="skip the reference loop")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast row")
    args = parser.parse_args(argv)
    rows = run(args.repeats, not args.no_baseline, not args.no_bf16, args.seed, args.device)
    print(format_rows(rows))
    print(f"wrote {RESULTS_CSV}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
