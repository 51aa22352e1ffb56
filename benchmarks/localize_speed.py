"""Speed of proposal generation and detection evaluation: ours vs the reference's loops.

Builds a THUMOS14-shaped test set — the 212 test videos with their real snippet counts
T = round(duration·25/16) — with seeded synthetic CAS logits and attention (bursts over the
ground-truth segments of each video plus smooth noise), tuned so that proposal generation gives
about 36k detections. Times `localize_videos` and `evaluate_detections` (median of `repeats`
runs) against `reference_loops` (run once: it is slow), prints a table and writes
`benchmarks/results/localize_speed.csv`.

    .venv/bin/python benchmarks/localize_speed.py [--repeats 3] [--no-baseline]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from co2net_pipeline.data.annotations import load_shipped_annotations, seconds_to_snippets
from co2net_pipeline.method.metric import THUMOS14_TIOU, evaluate_detections
from co2net_pipeline.method.proposals import ProposalParams, localize_videos
from co2net_pipeline.reports.evaluation_files import load_ground_truth

HERE = Path(__file__).resolve().parent
RESULTS_CSV = HERE / "results" / "localize_speed.csv"


def load_reference_loops():
    # the test oracle lives with the tests that check against it
    path = HERE.parent / "tests" / "reference_loops.py"
    spec = importlib.util.spec_from_file_location("reference_loops", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _smooth(noise: np.ndarray, width: int) -> np.ndarray:
    kernel = np.exp(-0.5 * (np.arange(-2 * width, 2 * width + 1) / width) ** 2)
    kernel /= kernel.sum()
    out = np.convolve(np.pad(noise, 2 * width, mode="reflect"), kernel, mode="valid")
    return out / (out.std() + 1e-9)


def thumos_test_videos() -> list[tuple[str, int, list[tuple[int, int, str]]]]:
    """The THUMOS14 test videos: (video_id, T = round(duration·25/16), ground-truth segments as
    (start, end, label) in snippets, clipped to [0, T) and at least one snippet long)."""
    annotations = load_shipped_annotations("thumos14").subset("test")
    segments = annotations.segments.groupby("video_id")
    videos = []
    for vid, duration in zip(
        annotations.videos["video_id"], annotations.videos["duration_s"], strict=True
    ):
        t = max(1, int(seconds_to_snippets(duration)))
        spans = []
        if vid in segments.groups:
            seg = segments.get_group(vid)
            starts = seconds_to_snippets(seg["t_start_s"].to_numpy())
            ends = seconds_to_snippets(seg["t_end_s"].to_numpy())
            for s, e, label in zip(starts, ends, seg["label"], strict=True):
                s = min(int(s), t - 1)
                spans.append((s, min(max(int(e), s + 1), t), label))
        videos.append((vid, t, spans))
    return videos


def synthetic_test_set(seed: int = 0) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """THUMOS14 test videos (real T) → (cas (T, 21) float32 logits, attention (T,) float32)."""
    classlist = list(load_shipped_annotations("thumos14").classlist)
    class_of = {c: i for i, c in enumerate(classlist)}
    rng = np.random.default_rng(seed)
    outputs = {}
    for vid, t, spans in thumos_test_videos():
        logit = 1.0 * _smooth(rng.standard_normal(t), 2) - 1.0
        cas = rng.normal(0.0, 0.5, size=(t, len(classlist) + 1))
        cas[:, -1] += 1.0
        for s, e, label in spans:
            logit[s:e] += 2.5 + rng.normal(0, 0.3)
            cas[s:e, class_of[label]] += 4.0
        attention = 1.0 / (1.0 + np.exp(-logit))
        outputs[vid] = (cas.astype(np.float32), attention.astype(np.float32))
    return outputs, classlist


def timed(fn: Callable[[], object], repeats: int) -> tuple[list[float], object]:
    """Wall times of `repeats` calls of fn, and its last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def _median_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, result = timed(fn, repeats)
    return statistics.median(times), result


DETECTION_COLUMNS = ["video_id", "label", "score", "t_start", "t_end"]


def ambiguous_by_video(ambiguous: pd.DataFrame) -> dict[str, list[tuple[float, float]]]:
    return {
        v: list(zip(g["t_start_s"], g["t_end_s"], strict=True))
        for v, g in ambiguous.groupby("video_id")
    }


def reference_video_rows(ref, vid, cas, attention, intervals, classlist) -> list[tuple]:
    """One video's detections by the reference loops, ambiguous intervals filtered out."""
    dets = ref.reference_video_proposals(cas, attention)
    dets = ref.reference_filter_ambiguous(dets, intervals)
    return [(vid, classlist[int(c)], score, s, e) for c, score, s, e in dets]


def _reference_proposals(ref, outputs, classlist, ambiguous) -> pd.DataFrame:
    by_video = ambiguous_by_video(ambiguous)
    rows = []
    for vid, (cas, attention) in outputs.items():
        rows += reference_video_rows(ref, vid, cas, attention, by_video.get(vid, []), classlist)
    return pd.DataFrame(rows, columns=DETECTION_COLUMNS)


def _report_agreement(detections, ref_dets, result, ref_ap) -> None:
    key = ["video_id", "label", "t_start", "t_end", "score"]
    ours = detections[key].sort_values(key).reset_index(drop=True)
    theirs = ref_dets[key].sort_values(key).reset_index(drop=True)
    same_rows = len(ours) == len(theirs) and (ours[key[:4]].values == theirs[key[:4]].values).all()
    score_gap = float(np.abs(ours["score"] - theirs["score"]).max()) if same_rows else float("nan")
    print(
        f"proposals: same rows as the reference loops: {same_rows}; max score gap {score_gap:.1e}"
    )
    ap_gap = np.abs(
        ref_ap.loc[result.per_class_ap.index].to_numpy() - result.per_class_ap.to_numpy()
    )
    print(
        f"evaluation: max |AP ours - AP reference loops| = {ap_gap.max():.1e} "
        f"(mAP@0.5 = {result.map[0.5]:.4f}). Snippet-unit detections have many equal-tIoU ties; "
        "the reference orders them with np.argsort, whose tie order depends on the NumPy build "
        "and CPU, while ours follows its stable small-array order (see evaluate_detections)."
    )


def run(
    repeats: int = 3, baseline: bool = True, seed: int = 0, output: Path | None = RESULTS_CSV
) -> list[dict]:
    """Time both stages; returns rows {stage, impl, median_s, runs, ratio, items}.

    ratio = this row's time / our time for the same stage (1.0 for ours). With `baseline` the
    reference loops run once per stage.
    """
    outputs, classlist = synthetic_test_set(seed)
    ambiguous = load_shipped_annotations("thumos14").ambiguous
    params = ProposalParams()
    gt, _, _ = load_ground_truth("thumos14", "test", "snippets")

    rows: list[dict] = []
    ours_s, detections = _median_time(
        lambda: localize_videos(outputs, classlist, params, ambiguous), repeats
    )
    rows.append(
        {
            "stage": "proposals",
            "impl": "ours",
            "median_s": ours_s,
            "runs": repeats,
            "items": len(detections),
        }
    )
    predictions = detections[["video_id", "t_start", "t_end", "label", "score"]]
    eval_s, result = _median_time(
        lambda: evaluate_detections(predictions, gt, THUMOS14_TIOU), repeats
    )
    rows.append(
        {
            "stage": "evaluation",
            "impl": "ours",
            "median_s": eval_s,
            "runs": repeats,
            "items": len(predictions),
        }
    )
    if baseline:
        ref = load_reference_loops()
        ref_s, ref_dets = _median_time(
            lambda: _reference_proposals(ref, outputs, classlist, ambiguous), 1
        )
        rows.append(
            {
                "stage": "proposals",
                "impl": "reference loops",
                "median_s": ref_s,
                "runs": 1,
                "items": len(ref_dets),
            }
        )
        ref_eval_s, ref_ap = _median_time(
            lambda: ref.reference_evaluate(predictions, gt, THUMOS14_TIOU), 1
        )
        rows.append(
            {
                "stage": "evaluation",
                "impl": "reference loops",
                "median_s": ref_eval_s,
                "runs": 1,
                "items": len(predictions),
            }
        )
        _report_agreement(detections, ref_dets, result, ref_ap)
    ours = {r["stage"]: r["median_s"] for r in rows if r["impl"] == "ours"}
    for r in rows:
        r["ratio"] = r["median_s"] / ours[r["stage"]]
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows)[["stage", "impl", "median_s", "ratio", "runs", "items"]].to_csv(
            output, index=False
        )
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'stage':<12} {'impl':<16} {'median s':>10} {'ratio':>8} {'runs':>5} {'items':>7}"]
    for r in rows:
        lines.append(
            f"{r['stage']:<12} {r['impl']:<16} {r['median_s']:>10.4f} {r['ratio']:>8.1f} {r['runs']:>5} {r['items']:>7}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-baseline", action="store_true", help="skip the slow reference loops")
    args = parser.parse_args(argv)
    rows = run(repeats=args.repeats, baseline=not args.no_baseline, seed=args.seed)
    print(format_rows(rows))
    print(f"written {RESULTS_CSV}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
