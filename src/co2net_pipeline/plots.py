"""Figures logged to MLflow: loss curves, mAP vs tIoU, per-video CAS/attention with detections."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from co2net_pipeline.localization import SECONDS_PER_SNIPPET  # noqa: E402


def loss_curves(history: pd.DataFrame, smooth: int = 20) -> plt.Figure:
    """Every loss term against the iteration, smoothed by a running mean of `smooth` points."""
    terms = [c for c in history.columns if c != "iteration"]
    fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms), 3), squeeze=False)
    for ax, term in zip(axes[0], terms, strict=True):
        values = history[term].to_numpy(dtype=float)
        ax.plot(history["iteration"], values, alpha=0.3, lw=0.8)
        if len(values) >= smooth:
            kernel = np.ones(smooth) / smooth
            ax.plot(
                history["iteration"].iloc[smooth - 1 :],
                np.convolve(values, kernel, "valid"),
                lw=1.5,
            )
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
    fig.tight_layout()
    return fig


def map_vs_tiou(map_by_tiou: Mapping[float, float], title: str = "") -> plt.Figure:
    """Detection mAP (%) against the tIoU threshold."""
    tious = sorted(map_by_tiou)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(tious, [100 * map_by_tiou[t] for t in tious], marker="o")
    for t in tious:
        ax.annotate(
            f"{100 * map_by_tiou[t]:.1f}",
            (t, 100 * map_by_tiou[t]),
            fontsize=7,
            ha="center",
            va="bottom",
        )
    ax.set_xlabel("tIoU threshold")
    ax.set_ylabel("mAP (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def video_examples(
    outputs: Mapping[str, Mapping[str, np.ndarray]],
    detections: pd.DataFrame,
    ground_truth: pd.DataFrame,
    classlist: Sequence[str],
    video_ids: Sequence[str],
    seconds_per_snippet: float = SECONDS_PER_SNIPPET,
    top_detections: int = 5,
) -> plt.Figure:
    """One panel per video: attention, the CAS of its ground-truth classes, GT and top detections.

    outputs[v]: "cas" (T, C+1) logits and "attention" (T,); detections/ground_truth in snippets
    (columns video_id, label, t_start, t_end[, score]).
    """
    fig, axes = plt.subplots(
        len(video_ids), 1, figsize=(10, 2.4 * max(1, len(video_ids))), squeeze=False
    )
    for ax, vid in zip(axes[:, 0], video_ids, strict=True):
        cas, attention = outputs[vid]["cas"], outputs[vid]["attention"]
        t = np.arange(len(attention)) * seconds_per_snippet
        ax.plot(t, attention, color="black", lw=1, label="attention")
        gt = ground_truth[ground_truth["video_id"] == vid]
        for k, label in enumerate(sorted(gt["label"].unique())):
            c = classlist.index(label)
            act = cas[:, c] * attention
            span = np.ptp(act) or 1.0
            ax.plot(t, (act - act.min()) / span, lw=0.8, color=f"C{k}", label=f"CAS×att {label}")
            for _, row in gt[gt["label"] == label].iterrows():
                ax.axvspan(
                    row["t_start"] * seconds_per_snippet,
                    row["t_end"] * seconds_per_snippet,
                    ymin=0.0,
                    ymax=0.08,
                    color=f"C{k}",
                )
        dets = detections[detections["video_id"] == vid].nlargest(top_detections, "score")
        for i, (_, row) in enumerate(dets.iterrows()):
            y = 1.05 + 0.05 * i
            ax.plot(
                [row["t_start"] * seconds_per_snippet, row["t_end"] * seconds_per_snippet],
                [y, y],
                lw=3,
                color="red",
                alpha=0.7,
            )
        ax.set_title(
            f"{vid}: GT bars at bottom, top-{top_detections} detections in red", fontsize=8
        )
        ax.set_ylim(-0.02, 1.35)
        ax.legend(fontsize=6, loc="upper right", ncol=3)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return fig
