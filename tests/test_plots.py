"""The MLflow figures read at a glance: loss curves as a grid, detections labelled."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from co2net_pipeline.reports import figures as plots

CLASSES = ["BaseballPitch", "CricketBowling", "CricketShot"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_loss_curves_are_a_grid_not_a_strip():
    terms = ["total", "cls_rgb", "cls_flow", "cls_fused", "mutual", "norm", "guide"]
    history = pd.DataFrame({t: np.linspace(2, 0, 50) for t in terms})
    history.insert(0, "iteration", np.arange(50))
    fig = plots.loss_curves(history, smooth=5)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == terms
    width, height = fig.get_size_inches()
    assert width / height < 2.5  # 7 panels in one row were 22.4 x 3 inches
    rows = {round(ax.get_position().y0, 3) for ax in shown}
    assert len(rows) == 3
    # every column's lowest panel carries the iteration axis
    assert sum(ax.get_xlabel() == "iteration" for ax in shown) == 3


def _video_inputs():
    rng = np.random.default_rng(0)
    outputs = {"v1": {"cas": rng.normal(size=(100, 4)), "attention": rng.random(100)}}
    gt = pd.DataFrame(
        {"video_id": "v1", "label": ["CricketShot"], "t_start": [10.0], "t_end": [30.0]}
    )
    detections = pd.DataFrame(
        {
            "video_id": "v1",
            "label": ["CricketShot", "BaseballPitch", "CricketShot"],
            "t_start": [12.0, 50.0, 90.0],
            "t_end": [28.0, 60.0, 99.0],
            "score": [0.91, 0.42, 0.05],
        }
    )
    return outputs, detections, gt


def test_video_examples_label_each_detection_with_class_and_score():
    outputs, detections, gt = _video_inputs()
    fig = plots.video_examples(outputs, detections, gt, CLASSES, ["v1"], top_detections=2)
    texts = [t.get_text().strip() for ax in fig.axes for t in ax.texts]
    assert sorted(texts) == ["BaseballPitch 0.42", "CricketShot 0.91"]  # the top 2 only
    lanes = [ax for ax in fig.axes if ax.get_yticklabels()]
    ticks = [t.get_text() for t in lanes[-1].get_yticklabels()]
    assert ticks == ["ground truth", "#1", "#2"]


def test_video_examples_legend_sits_outside_the_plots():
    outputs, detections, gt = _video_inputs()
    fig = plots.video_examples(outputs, detections, gt, CLASSES, ["v1"])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        assert box.x0 >= ax.get_window_extent(renderer).x1 - 1
    assert box.x1 <= fig.bbox.x1 + 1  # and inside the figure


def test_map_vs_tiou_of_one_curve_labels_each_point():
    fig = plots.map_vs_tiou({0.5: 0.25, 0.1: 0.5}, "test mAP")
    (ax,) = fig.axes
    assert list(ax.lines[0].get_xdata()) == [0.1, 0.5]  # in tIoU order
    assert list(ax.lines[0].get_ydata()) == [50.0, 25.0]  # percent
    assert [t.get_text() for t in ax.texts] == ["50.0", "25.0"]
    assert ax.get_legend() is None and ax.get_title() == "test mAP"


def test_map_vs_tiou_of_several_runs_draws_one_line_each_in_a_legend():
    curves = {"run_a": {0.1: 0.6, 0.5: 0.4}, "run_b": {0.1: 0.5, 0.5: float("nan")}}
    fig = plots.map_vs_tiou(curves)
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.lines] == ["run_a", "run_b"]
    assert list(ax.lines[0].get_ydata()) == [60.0, 40.0]
    assert ax.get_legend().get_title().get_text() == "run"
    assert not ax.texts  # values are read off the axis when curves overlap


def test_comparison_curves_are_the_selected_models_map_by_tiou():
    from co2net_pipeline.tracking.records import map_curves

    metrics = pd.DataFrame(
        {"aaaaaaaa": [0.6, 0.4, 0.5, 0.9], "bbbbbbbb": [0.5, np.nan, 0.45, 0.8]},
        index=["map_0.1", "map_0.5", "avg_0.1-0.5", "best_on_test.map_0.5"],
    )
    curves = map_curves(metrics)
    assert curves["aaaaaaaa"] == {0.1: 0.6, 0.5: 0.4}  # neither averages nor best-on-test rows
    assert curves["bbbbbbbb"][0.1] == 0.5 and np.isnan(curves["bbbbbbbb"][0.5])
