"""Training-step speed and peak memory at full THUMOS14 size: ours vs a reference-style step.

Batch 10 x 500 snippets x 2048 features, C = 20, on CPU (and CUDA when present). The steps are
timed side by side, each in its own subprocess (so peak memory is per implementation):

- "ours": `co2net_pipeline.method.training.train_model` itself (plan-driven vectorised snippet
  sampling, CO2Net, vectorised losses, Adam; fused Adam on CUDA), float32, timed between
  consecutive per-iteration `on_metrics` callbacks;
- "ours-bf16": the same with bf16 autocast (`TrainConfig.bf16`), on CUDA and on CPUs with
  AMX / AVX512-BF16;
- "reference-style": a plain eager transcription of the reference step written for this
  benchmark: host-side batch assembly with NumPy's global RNG and the per-element
  `random_perturb` loop, `np.array` stacking, the valid-length scan, float32 copy to the
  device, the reference model layout (with its unused `feat_encoder`), the reference loss
  code structure (a Python loop over the three pairs, softmax recomputed per term), Adam.

Each run does `warmup` + `iterations` steps (ours on CUDA: 25-step windows, timed by the loss
fetch that ends each window); `rounds` runs of each implementation alternate;
the median of all timed steps is reported, and ratio = reference-style / this row (> 1: faster). Peak
memory: CPU = the process's peak resident set (VmHWM, includes the synthetic features), with
"step" = peak minus the resident set once the features exist (model, Adam state,
activations, batch buffers); CUDA = torch.cuda.max_memory_allocated.
Writes benchmarks/results/train_speed.csv.

    .venv/bin/python benchmarks/train_speed.py [--iterations 3] [--rounds 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RESULTS_CSV = HERE / "results" / "train_speed.csv"
IMPLS = ("ours", "ours-bf16", "reference-style")

BATCH, SEQLEN, FEATURE_DIM, N_CLASSES = 10, 500, 1024, 20


def synthetic_train_set(n_videos: int = 40, seed: int = 0):
    """THUMOS14-like train videos: lengths 150..2500 snippets, every class on >= 2 videos."""
    rng = np.random.default_rng(seed)
    ids = [f"video_validation_{i:07d}" for i in range(n_videos)]
    labels = np.zeros((n_videos, N_CLASSES), dtype=np.float32)
    labels[np.arange(n_videos), np.arange(n_videos) % N_CLASSES] = 1
    labels[rng.random((n_videos, N_CLASSES)) < 0.05] = 1
    features = {
        vid: rng.standard_normal((int(rng.integers(150, 2500)), 2 * FEATURE_DIM), dtype=np.float32)
        for vid in ids
    }
    return ids, labels, features


def _memory_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# --- reference-style step (a transcription for timing, not used by the project) ------------------


def _reference_model_and_criterion(torch, n_classes: int, topk_divisor: int = 7):
    nn, F = torch.nn, torch.nn.functional

    class Unit(nn.Module):
        def __init__(self, d=1024):
            super().__init__()
            self.bit_wise_attn = nn.Sequential(
                nn.Conv1d(d, d, 3, padding=1), nn.LeakyReLU(0.2), nn.Dropout(0.5)
            )
            self.channel_conv = nn.Sequential(
                nn.Conv1d(d, d, 3, padding=1), nn.LeakyReLU(0.2), nn.Dropout(0.5)
            )
            self.attention = nn.Sequential(
                nn.Conv1d(d, 512, 3, padding=1),
                nn.LeakyReLU(0.2),
                nn.Dropout(0.5),
                nn.Conv1d(512, 512, 3, padding=1),
                nn.LeakyReLU(0.2),
                nn.Conv1d(512, 1, 1),
                nn.Dropout(0.5),
                nn.Sigmoid(),
            )
            self.channel_avg = nn.AdaptiveAvgPool1d(1)

        def forward(self, vfeat, ffeat):
            channel_attn = self.channel_conv(self.channel_avg(vfeat))
            bit_wise_attn = self.bit_wise_attn(ffeat)
            filter_feat = torch.sigmoid(bit_wise_attn * channel_attn) * vfeat
            return self.attention(filter_feat), filter_feat

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.vAttn, self.fAttn = Unit(), Unit()
            self.feat_encoder = nn.Sequential(
                nn.Conv1d(2048, 2048, 3, padding=1), nn.LeakyReLU(0.2), nn.Dropout(0.7)
            )
            self.fusion = nn.Sequential(
                nn.Conv1d(2048, 2048, 1), nn.LeakyReLU(0.2), nn.Dropout(0.7)
            )
            self.classifier = nn.Sequential(
                nn.Dropout(0.7),
                nn.Conv1d(2048, 2048, 3, padding=1),
                nn.LeakyReLU(0.2),
                nn.Dropout(0.7),
                nn.Conv1d(2048, n_classes + 1, 1),
            )

        def forward(self, inputs):
            feat = inputs.transpose(-1, -2)
            v_atn, vfeat = self.vAttn(feat[:, :1024, :], feat[:, 1024:, :])
            f_atn, ffeat = self.fAttn(feat[:, 1024:, :], feat[:, :1024, :])
            x_atn = (f_atn + v_atn) / 2
            nfeat = self.fusion(torch.cat((vfeat, ffeat), 1))
            x_cls = self.classifier(nfeat)
            return {
                "feat": nfeat.transpose(-1, -2),
                "cas": x_cls.transpose(-1, -2),
                "attn": x_atn.transpose(-1, -2),
                "v_atn": v_atn.transpose(-1, -2),
                "f_atn": f_atn.transpose(-1, -2),
            }

    def topkloss(logits, labels, is_back):
        back = torch.ones_like(labels[:, [0]]) if is_back else torch.zeros_like(labels[:, [0]])
        target = torch.cat((labels, back), dim=-1)
        k = max(1, int(logits.shape[-2] // topk_divisor))
        pooled = torch.mean(torch.topk(logits, k=k, dim=-2)[0], dim=-2)
        target = target / (torch.sum(target, dim=1, keepdim=True) + 1e-4)
        return -(target * F.log_softmax(pooled, dim=-1)).sum(dim=-1)

    def contrastive(x, logits, labels):
        labels = torch.cat((labels, torch.zeros_like(labels[:, [0]])), dim=-1)
        sim_loss, n_tmp = 0.0, 0.0
        n = logits.shape[1]
        zero = torch.tensor([0.0], device=logits.device)
        for i in range(0, 6, 2):
            atn1 = F.softmax(logits[i], dim=0)
            atn2 = F.softmax(logits[i + 1], dim=0)
            n1 = torch.tensor([float(max(n - 1, 1))], device=logits.device)
            hf1 = torch.mm(x[i].t(), atn1)
            hf2 = torch.mm(x[i + 1].t(), atn2)
            lf1 = torch.mm(x[i].t(), (1 - atn1) / n1)
            lf2 = torch.mm(x[i + 1].t(), (1 - atn2) / n1)
            d1 = 1 - (hf1 * hf2).sum(0) / (hf1.norm(2, dim=0) * hf2.norm(2, dim=0))
            d2 = 1 - (hf1 * lf2).sum(0) / (hf1.norm(2, dim=0) * lf2.norm(2, dim=0))
            d3 = 1 - (hf2 * lf1).sum(0) / (hf2.norm(2, dim=0) * lf1.norm(2, dim=0))
            shared = labels[i, :] * labels[i + 1, :]
            sim_loss = sim_loss + 0.5 * torch.sum(torch.max(d1 - d2 + 0.5, zero) * shared)
            sim_loss = sim_loss + 0.5 * torch.sum(torch.max(d1 - d3 + 0.5, zero) * shared)
            n_tmp = n_tmp + torch.sum(shared)
        return sim_loss / n_tmp

    def criterion(outputs, labels):
        feat, cas, atn = outputs["feat"], outputs["cas"], outputs["attn"]
        v_atn, f_atn = outputs["v_atn"], outputs["f_atn"]
        mutual = 0.5 * F.mse_loss(v_atn, f_atn.detach()) + 0.5 * F.mse_loss(f_atn, v_atn.detach())
        cas_min = cas.min(dim=-1, keepdim=True)[0]
        cas_supp = atn * (cas - cas_min) + cas_min
        mil_orig = topkloss(cas, labels, True)
        mil_supp = topkloss(cas_supp, labels, False)
        co_activity = contrastive(feat, cas_supp, labels)
        guide = (1 - atn - cas.softmax(-1)[..., [-1]]).abs().mean()
        v_guide = (1 - v_atn - cas.softmax(-1)[..., [-1]]).abs().mean()
        f_guide = (1 - f_atn - cas.softmax(-1)[..., [-1]]).abs().mean()
        return (
            mil_orig.mean()
            + mil_supp.mean()
            + co_activity
            + mutual
            + 0.8 * (atn.mean() + v_atn.mean() + f_atn.mean()) / 3
            + 0.8 * (guide + v_guide + f_guide) / 3
        )

    return Model(), criterion


def _random_perturb(length: int, num_segments: int) -> np.ndarray:
    if num_segments == length:
        return np.arange(num_segments).astype(int)
    samples = np.arange(num_segments) * length / num_segments
    for i in range(num_segments):
        if i < num_segments - 1:
            if int(samples[i]) != int(samples[i + 1]):
                samples[i] = np.random.choice(range(int(samples[i]), int(samples[i + 1]) + 1))
            else:
                samples[i] = int(samples[i])
        elif int(samples[i]) < length - 1:
            samples[i] = np.random.choice(range(int(samples[i]), length))
        else:
            samples[i] = int(samples[i])
    return samples.astype(int)


def _reference_worker(device_name: str, warmup: int, iterations: int, seed: int) -> dict:
    import torch

    device = torch.device(device_name)
    ids, labels, features = synthetic_train_set(seed=seed)
    rss_setup = _memory_kb("VmRSS")
    classwise = [np.flatnonzero(labels[:, c] > 0) for c in range(N_CLASSES)]
    feature_list = [features[v] for v in ids]
    np.random.seed(3552)
    torch.manual_seed(3552)
    model, criterion = _reference_model_and_criterion(torch, N_CLASSES)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv1d):
            torch.nn.init.kaiming_uniform_(m.weight)
            m.bias.data.fill_(0)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-5, weight_decay=1e-3)

    def load_data():
        idx = []
        for rid in np.random.choice(len(classwise), size=3):
            for k in np.random.choice(len(classwise[rid]), size=2, replace=False):
                idx.append(classwise[rid][k])
        idx.extend(np.random.choice(len(ids), size=BATCH - 6))
        feat = np.array(
            [feature_list[i][_random_perturb(len(feature_list[i]), SEQLEN)] for i in idx]
        )
        return feat, labels[idx]

    def step():
        model.train()
        feats, labs = load_data()
        seq_len = np.sum(np.max(np.abs(feats), axis=2) > 0, axis=1)
        feats = feats[:, : np.max(seq_len), :]
        x = torch.from_numpy(feats).float().to(device)
        y = torch.from_numpy(labs).float().to(device)
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss.data.cpu().numpy())

    return _time_steps(torch, device, step, warmup, iterations, rss_setup)


def _time_steps(torch, device, step, warmup: int, iterations: int, rss_setup: int) -> dict:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return _result(torch, device, times, rss_setup)


def _result(torch, device, times: list[float], rss_setup_kb: int) -> dict:
    out = {
        "times": times,
        "peak_rss_mb": _memory_kb("VmHWM") / 1024,
        "step_rss_mb": (_memory_kb("VmHWM") - rss_setup_kb) / 1024,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def _ours_worker(device_name: str, warmup: int, iterations: int, seed: int, bf16: bool) -> dict:
    import torch

    from co2net_pipeline.method.losses import LossConfig
    from co2net_pipeline.method.model import ModelConfig
    from co2net_pipeline.method.sampler import make_sampling_plan
    from co2net_pipeline.method.training import TrainConfig, train_model

    device = torch.device(device_name)
    ids, labels, features = synthetic_train_set(seed=seed)
    # CUDA: loss values come back every 25 steps, as in training (the host queues steps
    # ahead), so `warmup` and `iterations` count 25-step windows, each timed as one mean step.
    chunk = 1 if device.type == "cpu" else 25
    n_iter = (warmup + iterations) * chunk
    plan = make_sampling_plan(ids, labels, n_iter, batch_size=BATCH, n_similar=3, seed=3552)
    stamps: dict[int, float] = {}
    rss_setup = _memory_kb("VmRSS")

    def on_metrics(itr: int, metrics: dict) -> None:
        if (itr + 1) % chunk:
            return
        if itr == warmup * chunk - 1 and device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        stamps[itr] = time.perf_counter()  # values are on the host: the steps are complete

    cfg = TrainConfig(
        lr=5e-5,  # the reference THUMOS14 run (TrainConfig's defaults are conf/base's)
        max_iter=n_iter,
        interval=10**9,
        cpu_threads=None,
        max_seqlen=SEQLEN,
        batch_size=BATCH,
        device=device_name,
        bf16=bf16,
        features_on_device=device.type == "cuda",
        metrics_every=chunk,
    )
    train_model(
        features,
        dict(zip(ids, labels, strict=True)),
        plan,
        ModelConfig(feature_dim=FEATURE_DIM, n_classes=N_CLASSES, attention_hidden=512),
        LossConfig(),
        cfg,
        None,
        on_metrics=on_metrics,
        progress=False,
    )
    ends = [stamps[i] for i in sorted(stamps) if i >= warmup * chunk - 1]
    times = [float(d) / chunk for d in np.diff(ends)]
    return _result(torch, device, times, rss_setup)


def _spawn(impl: str, device: str, warmup: int, iterations: int, seed: int) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        impl,
        "--device",
        device,
        "--warmup",
        str(warmup),
        "--iterations",
        str(iterations),
        "--seed",
        str(seed),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} on {device} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(
    iterations: int = 3,
    warmup: int = 1,
    devices: list[str] | None = None,
    seed: int = 0,
    bf16: bool = True,
    rounds: int = 1,
    output: Path | None = RESULTS_CSV,
) -> list[dict]:
    """Time the training steps; returns rows {device, impl, median_s, min_s, runs, ratio,
    peak_rss_mb, step_rss_mb, peak_gpu_mb}. ratio = reference-style median / this row's median
    (same device; higher is faster). Each round runs every implementation once, in turn, so
    that slow drifts of the machine hit all of them alike; the median is over all rounds."""
    import torch

    from co2net_pipeline.method.training import bf16_is_fast

    if warmup < 1:
        raise ValueError("warmup must be >= 1 (the first step pays one-off setup costs)")
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        impls = [i for i in IMPLS if i != "ours-bf16" or (bf16 and bf16_is_fast(device))]
        results: dict[str, list[dict]] = {impl: [] for impl in impls}
        for _ in range(rounds):
            for impl in impls:
                results[impl].append(_spawn(impl, device, warmup, iterations, seed))
        for impl, runs in results.items():
            times = [t for res in runs for t in res["times"]]
            res = max(runs, key=lambda r: r["peak_rss_mb"])
            rows.append(
                {
                    "device": device if device == "cpu" else res.get("gpu", device),
                    "impl": impl,
                    "median_s": statistics.median(times),
                    "min_s": min(times),
                    "runs": len(times),
                    "peak_rss_mb": res["peak_rss_mb"],
                    "step_rss_mb": res["step_rss_mb"],
                    "peak_gpu_mb": max(r.get("peak_gpu_mb", float("nan")) for r in runs),
                    "threads": res["threads"],
                    "shape": f"{BATCH}x{SEQLEN}x{2 * FEATURE_DIM}, C={N_CLASSES}",
                }
            )
    for row in rows:
        reference = next(
            r for r in rows if r["device"] == row["device"] and r["impl"] == "reference-style"
        )
        row["ratio"] = reference["median_s"] / row["median_s"]
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(output, index=False)
    return rows


def format_rows(rows: list[dict]) -> str:
    head = (
        f"{'device':<22} {'impl':<17} {'median s/it':>11} {'min s/it':>9} {'speed-up':>8} "
        f"{'peak RSS MB':>11} {'step RSS MB':>11} {'peak GPU MB':>11}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['device']:<22} {r['impl']:<17} {r['median_s']:>11.3f} {r['min_s']:>9.3f} "
            f"{r['ratio']:>8.2f} {r['peak_rss_mb']:>11.0f} {r['step_rss_mb']:>11.0f} "
            f"{r['peak_gpu_mb']:>11.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each implementation")
    parser.add_argument("--device", action="append", help="cpu / cuda (repeatable); default all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast row")
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        device = (args.device or ["cpu"])[0]
        if args.worker == "reference-style":
            res = _reference_worker(device, args.warmup, args.iterations, args.seed)
        else:
            bf16 = args.worker == "ours-bf16"
            res = _ours_worker(device, args.warmup, args.iterations, args.seed, bf16)
        print(json.dumps(res))
        return 0
    rows = run(args.iterations, args.warmup, args.device, args.seed, not args.no_bf16, args.rounds)
    print(format_rows(rows))
    print(f"wrote {RESULTS_CSV}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
