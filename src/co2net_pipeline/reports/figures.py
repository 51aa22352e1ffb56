"""Figures logged to MLflow: loss curves, mAP vs tIoU, per-video CAS/attention with detections."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from co2net_pipeline.method.proposals import SECONDS_PER_SNIPPET  # noqa: E402


def loss_curves(history: pd.DataFrame, smooth: int = 20, ncols: int = 3) -> plt.Figure:
    """Every loss term against the iteration, one panel each in a grid of `ncols` columns (a
    single row of 7 panels is unreadable once scaled), smoothed by a running mean of `smooth`
    points."""
    terms = [c for c in history.columns if c != "iteration"]
    ncols = max(1, min(ncols, len(terms)))
    nrows = max(1, -(-len(terms) // ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 2.9 * nrows), squeeze=False, sharex=True
    )
    for ax, term in zip(axes.flat, terms, strict=False):
        values = history[term].to_numpy(dtype=float)
        ax.plot(history["iteration"], values, alpha=0.3, lw=0.8, color="C0")
        if len(values) >= smooth:
            kernel = np.ones(smooth) / smooth
            ax.plot(
                history["iteration"].iloc[smooth - 1 :],
                np.convolve(values, kernel, "valid"),
                lw=1.5,
                color="C0",
            )
        ax.set_title(term, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(terms) :]:
        ax.set_visible(False)
    for column in axes.T:  # the lowest shown panel of each column carries the x axis
        bottom = [ax for ax in column if ax.get_visible()][-1]
        bottom.xaxis.set_tick_params(labelbottom=True)
        bottom.set_xlabel("iteration")
    fig.suptitle(f"Loss terms (faint: per iteration; solid: running mean of {smooth})")
    fig.tight_layout()
    return fig


def map_vs_tiou(
    curves: Mapping[float, float] | Mapping[str, Mapping[float, float]],
    title: str = "",
    legend_title: str = "run",
) -> plt.Figure:
    """Detection mAP (%) against the tIoU threshold, mAPs given as fractions.

    One curve, `{tIoU: mAP}`: each point labelled with its value (the evaluation report). Several,
    `{name: {tIoU: mAP}}`: one line each, named in a legend titled `legend_title` (run
    comparisons); a NaN (a threshold a run did not log) leaves a gap."""
    several = any(isinstance(v, Mapping) for v in curves.values())
    named = curves if several else {"": curves}
    fig, ax = plt.subplots(figsize=(6, 4) if several else (5, 3.5))
    for name, map_by_tiou in named.items():
        tious = sorted(map_by_tiou)
        percent = [100 * map_by_tiou[t] for t in tious]
        ax.plot(tious, percent, marker="o", label=name)
        if not several:
            for t, value in zip(tious, percent, strict=True):
                ax.annotate(f"{value:.1f}", (t, value), fontsize=7, ha="center", va="bottom")
    ax.set_xlabel("tIoU threshold")
    ax.set_ylabel("mAP (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if several:
        ax.legend(title=legend_title)
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
    """Per video: attention and the CAS of its ground-truth classes over time, and beneath, on
    the same time axis, the ground-truth segments and the top detections, each bar labelled with
    its class (and score). Legends sit right of the plots, not over them.

    outputs[v]: "cas" (T, C+1) logits and "attention" (T,); detections/ground_truth in snippets
    (columns video_id, label, t_start, t_end[, score]).
    """
    fig = plt.figure(figsize=(12, 4.2 * max(1, len(video_ids))))
    panels = fig.subfigures(max(1, len(video_ids)), 1, squeeze=False)[:, 0]
    for panel, vid in zip(panels, video_ids, strict=False):
        cas, attention = outputs[vid]["cas"], outputs[vid]["attention"]
        t = np.arange(len(attention)) * seconds_per_snippet
        signal, lanes = panel.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1.3], "hspace": 0.08}
        )
        gt = ground_truth[ground_truth["video_id"] == vid]
        dets = detections[detections["video_id"] == vid].nlargest(top_detections, "score")
        # one colour per class, shared by its CAS curve, GT bars and detections
        shown = sorted(set(gt["label"]) | set(dets["label"]))
        colour = {label: f"C{k % 10}" for k, label in enumerate(shown)}
        signal.plot(t, attention, color="black", lw=1, label="attention")
        for label in sorted(gt["label"].unique()):
            act = cas[:, classlist.index(label)] * attention
            span = np.ptp(act) or 1.0
            signal.plot(
                t, (act - act.min()) / span, lw=0.8, color=colour[label], label=f"CAS×att {label}"
            )
        signal.set_ylim(-0.02, 1.05)
        signal.set_ylabel("score")
        signal.set_title(
            f"{vid}: attention and CAS×attention; below, ground truth and the top-"
            f"{top_detections} detections (class, score)",
            fontsize=9,
            loc="left",
        )
        signal.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)

        rows = [("ground truth", _bars(gt, seconds_per_snippet), False)] + [
            (f"#{i + 1}", _bars(row.to_frame().T, seconds_per_snippet), True)
            for i, (_, row) in enumerate(dets.iterrows())
        ]
        duration = max(t[-1] if len(t) else 0.0, seconds_per_snippet)
        for y, (_, bars, scored) in enumerate(rows):
            for start, end, label, score in bars:
                lanes.broken_barh(
                    [(start, end - start)], (y - 0.35, 0.7), color=colour[label], alpha=0.85
                )
                if scored:  # ground truth bars: the class by colour, as in the legend
                    _label_bar(lanes, start, end, y, duration, f"{label} {score:.2f}")
        lanes.set_yticks(range(len(rows)), [name for name, _, _ in rows], fontsize=7)
        lanes.set_ylim(len(rows) - 0.5, -0.5)
        lanes.set_xlim(0, duration)
        panel.subplots_adjust(left=0.09, right=0.8, top=0.9, bottom=0.14)
        lanes.grid(axis="x", alpha=0.3)
        lanes.set_xlabel("time (s)" if vid == video_ids[-1] else "")
    return fig


def _label_bar(ax: plt.Axes, start: float, end: float, y: float, duration: float, text: str):
    """Write `text` where there is room: after the bar, before it, or on it (white) when the
    bar spans most of the video."""
    if end < 0.7 * duration:
        ax.text(end, y, f" {text}", va="center", ha="left", fontsize=7)
    elif start > 0.3 * duration:
        ax.text(start, y, f"{text} ", va="center", ha="right", fontsize=7)
    else:
        ax.text(start, y, f" {text}", va="center", ha="left", fontsize=7, color="white")


def _bars(rows: pd.DataFrame, seconds_per_snippet: float) -> list[tuple[float, float, str, float]]:
    """(start s, end s, label, score) per row of a segments / detections table (snippets)."""
    scores = rows["score"] if "score" in rows else pd.Series(np.nan, index=rows.index)
    return [
        (float(s) * seconds_per_snippet, float(e) * seconds_per_snippet, str(label), float(sc))
        for s, e, label, sc in zip(
            rows["t_start"], rows["t_end"], rows["label"], scores, strict=True
        )
    ]
