"""ActivityNet1.2 as the original runs it (issue 20): empty (T = 0), short and all-zero videos
ingested and trained on, `co2net ingest` reporting them, the pooling kernel following
`training.max_seqlen`, and `best_on_test` chosen among the original's test points only."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli import run

from co2net_pipeline.data.annotations import Annotations
from co2net_pipeline.data.ingest import ingest
from co2net_pipeline.data.store import FeatureStore
from co2net_pipeline.method.inference import load_model, run_inference
from co2net_pipeline.method.losses import LossConfig
from co2net_pipeline.method.model import ModelConfig, build_model
from co2net_pipeline.method.proposals import localize_videos, video_scores_table
from co2net_pipeline.method.sampler import make_sampling_plan
from co2net_pipeline.method.selection import (
    best_on_test,
    classification_map,
    ranked_average_precision,
)
from co2net_pipeline.method.training import TrainConfig, train_model
from co2net_pipeline.pipelines.evaluation.nodes import evaluate_proposals
from co2net_pipeline.pipelines.snippet_sampling.nodes import build_sampling_plan, split_videos
from co2net_pipeline.pipelines.training.nodes import train

sys.path.insert(0, str(Path(__file__).parent / "data"))  # the data-layer tests' tiny datasets
from data_helpers import write_wtalc  # noqa: E402

# The name does not decide anything (`snippet_sampling.dataset_class` does: tests/
# test_dataset_class.py); the CLI test uses the shipped name, compared with the shipped annotations
NAME = "ActivityNetTiny"
DIM = 8  # channels per modality
# video: (subset, class, snippets, features all zero)
VIDEOS = {
    "t_a1": ("training", "Archery", 30, False),
    "t_a2": ("training", "Archery", 36, False),
    "t_a3": ("training", "Archery", 41, False),
    "t_b1": ("training", "Ballet", 33, False),
    "t_b2": ("training", "Ballet", 38, False),
    "t_b3": ("training", "Ballet", 44, False),
    "t_b4": ("training", "Ballet", 35, True),  # all zero, long: fill pool only
    # Curling's only pair candidates are short: the original keeps them in its pools
    "t_c_short1": ("training", "Curling", 5, False),
    "t_c_short2": ("training", "Curling", 8, False),
    "t_c_long": ("training", "Curling", 30, True),  # all zero, long: fill pool only
    "t_empty": ("training", "Archery", 0, False),  # T = 0: nowhere
    "v_a": ("validation", "Archery", 40, False),
    "v_b": ("validation", "Ballet", 35, False),
    "v_c": ("validation", "Curling", 31, False),
    "v_zero": ("validation", "Archery", 25, True),  # all zero, long: stays a test video
    "v_short": ("validation", "Ballet", 6, False),  # <= 10 snippets: leaves the test list
}
SAMPLING = {
    "train_subset": "training",
    "test_subset": "validation",
    "dataset_class": "activitynet12",
    "rng": "original",
}


def _anet_wtalc(folder, name: str = NAME) -> None:
    """A tiny ActivityNet1.2-layout W-TALC file (the empty video is stored as shape (0,))."""
    rng = np.random.default_rng(0)
    rows, segments, features = [], [], []
    for vid, (subset, label, length, zero) in VIDEOS.items():
        duration = max(length, 5) * 16 / 25
        rows.append((vid, subset, duration, [label]))
        segments.append((vid, 0.1 * duration, 0.6 * duration, label))
        if length == 0:
            features.append(np.zeros(0, np.float32))
        else:
            values = rng.standard_normal((length, 2 * DIM)).astype(np.float32)
            features.append(np.zeros_like(values) if zero else values)
    videos = pd.DataFrame(rows, columns=["video_id", "subset", "duration_s", "labels"])
    segments = pd.DataFrame(segments, columns=["video_id", "t_start_s", "t_end_s", "label"])
    ambiguous = pd.DataFrame(columns=["video_id", "t_start_s", "t_end_s"])
    classlist = ["Archery", "Ballet", "Curling"]
    write_wtalc(folder, Annotations(name, classlist, videos, segments, ambiguous), features, name)


def test_activitynet_file_with_empty_short_and_all_zero_videos_trains(tmp_path) -> None:
    _anet_wtalc(tmp_path / "raw")
    result = ingest(
        tmp_path / "raw", store_path=tmp_path / "f.h5", tables_dir=tmp_path, report_dir=tmp_path
    )
    videos = result.videos.set_index("video_id")
    assert videos.loc["t_empty", "n_snippets"] == 0
    assert sorted(videos.index[videos["all_zero"]]) == ["t_b4", "t_c_long", "v_zero"]
    split = split_videos(result.videos, result.classlist, SAMPLING)
    assert split["test"] == ["v_a", "v_b", "v_c", "v_zero"]
    assert "t_c_short1" in split["pairs"] and "t_c_short1" not in split["train"]
    assert "t_c_long" in split["train"] and "t_c_long" not in split["pairs"]
    assert "t_empty" not in split["train"] + split["pairs"]
    training = {
        "batch_size": 10,
        "n_similar": 3,
        "seed": 3552,
        "max_iter": 6,
        "interval": 2,
        "max_seqlen": 20,
        "lr": 1e-3,
        "progress": False,
        "log_every": 1,
        "cpu_threads": 1,
        "checkpoint_dir": str(tmp_path / "ckpt"),
    }
    plan = build_sampling_plan(result.videos, result.classlist, split, SAMPLING, training)
    assert {"t_c_short1", "t_c_short2"} <= set(plan["video_id"])  # short videos are trained on
    evaluation = {
        "test_curve_every": 2,
        "tiou": [0.5, 0.75, 0.95],
        "selection_average": "0.5:0.95",
    }
    artifact, history, *_, curve, best, _ = train(
        FeatureStore(result.store_path),
        result.videos,
        result.segments,
        result.ambiguous,
        result.classlist,
        split,
        plan,
        {"feature_dim": DIM, "attention_hidden": 16, "variant": "activitynet12"},
        {"topk_divisor": 5},
        training,
        {"ambiguous_filter": False},
        evaluation,
        SAMPLING,
    )
    assert len(history) == 6 and np.isfinite(history["total"]).all()
    # the pooling kernel follows training.max_seqlen: (20 // 5) // 2 * 2 + 1 = 5
    assert artifact["model_config"]["max_seqlen"] == 20
    assert load_model(artifact).pool.kernel_size == (5,)
    assert [p["step"] for p in curve["classification_map"]] == [2, 4, 5]
    assert [p["value"] for p in curve["reference_point"]] == [1.0, 1.0, 0.0]
    assert best["iteration"]["value"] in (2.0, 4.0)
    # as the original's evaluator: the short test video is not scored, its ground truth counts
    columns = ["video_id", "t_start", "t_end", "label", "score", "t_start_s", "t_end_s"]
    no_predictions = pd.DataFrame(columns=columns)
    _, report, *_ = evaluate_proposals(
        no_predictions, result.segments, result.videos, result.classlist, evaluation, SAMPLING
    )
    assert report["n_ground_truth"] == 5  # v_a, v_b, v_c, v_zero and v_short


def test_cli_ingest_reports_all_zero_and_empty_videos(tmp_path) -> None:
    _anet_wtalc(tmp_path / "raw", "ActivityNet1.2")
    code, out, err = run(
        ["ingest", "--features", str(tmp_path / "raw"), "--output", str(tmp_path / "f.h5")]
    )
    assert code == 0, err
    assert "warning: 1 empty (T = 0) and 3 all-zero video(s) in ActivityNet1.2" in err
    assert "**empty_videos** (1)" in out and "t_empty" in out
    assert "**all_zero_videos** (3)" in out and "t_b4, t_c_long, v_zero" in out


def test_empty_video_goes_through_inference_and_proposals() -> None:
    model = build_model(ModelConfig(feature_dim=DIM, n_classes=3, attention_hidden=16))
    rng = np.random.default_rng(1)
    features = {
        "empty": np.zeros((0, 2 * DIM), np.float32),
        "full": rng.standard_normal((12, 2 * DIM)).astype(np.float32),
    }
    outputs = run_inference(model, features)
    assert outputs["empty"]["cas"].shape == (0, 4) and outputs["empty"]["attention"].shape == (0,)
    pairs = {v: (o["cas"], o["attention"]) for v, o in outputs.items()}
    detections = localize_videos(pairs, ["a", "b", "c"])
    assert "empty" not in set(detections["video_id"])
    assert video_scores_table(pairs, ["a", "b", "c"]).loc["empty"].tolist() == [0.25] * 3


def test_best_on_test_is_never_the_final_point(one_torch_thread) -> None:
    """300 iterations, a test point every 100: the original scores 100 and 200 only; a final
    point that scores higher (as on the synthetic data) stays on the curve, labelled, but is
    never `best_on_test`."""
    rng = np.random.default_rng(0)
    ids = [f"v{i}" for i in range(6)]
    labels = np.eye(2, dtype=np.float32)[[0, 0, 0, 1, 1, 1]]
    features = {v: rng.standard_normal((8, 2 * 4)).astype(np.float32) for v in ids}
    plan = make_sampling_plan(ids, labels, 300, batch_size=4, n_similar=1, seed=1)
    cfg = TrainConfig(max_iter=300, interval=100, max_seqlen=8, batch_size=4, n_similar=1)
    scores = {100: 0.3, 200: 0.2, 299: 0.9}
    result = train_model(
        features,
        dict(zip(ids, labels, strict=True)),
        plan,
        ModelConfig(feature_dim=4, n_classes=2, attention_hidden=4),
        LossConfig(n_similar=1),
        cfg,
        progress=False,
        test_curve=lambda model, itr: {"avg_0.1-0.7": scores[itr]},
        test_curve_every=100,
    )
    curve = result.test_curve
    assert curve["iteration"].tolist() == [100, 200, 299]
    assert curve["reference_point"].tolist() == [1.0, 1.0, 0.0]
    assert best_on_test(curve, "0.1:0.7") == {"iteration": 100.0, "avg_0.1-0.7": 0.3}


@pytest.mark.parametrize(
    ("topk_divisor", "expected"),
    [(None, 0.5), (2, 1.0)],
    ids=["original-k1", "t-over-2"],
)
def test_classification_map_as_the_original(topk_divisor, expected) -> None:
    """The original's score is the softmax of the MAX over time (its k = ceil(1 / 8) = 1);
    `topk_divisor` gives the intended mean of the top T / d."""
    # video 0 carries class 0 but has one spike of class 1; video 1 carries class 1
    spike = np.array([[3.0, 0.0, 0.0], [3.0, 0.0, 0.0], [3.0, 9.0, 0.0], [3.0, 0.0, 0.0]])
    plain = np.tile([0.0, 5.0, 0.0], (4, 1))
    labels = np.array([[1, 0], [0, 1]])
    assert classification_map([spike, plain], labels, topk_divisor) == pytest.approx(expected)


def test_classification_map_ranks_tied_videos_one_by_one() -> None:
    """W-TALC's `getAP`, which the original calls: tied videos (e.g. all-zero ones, whose CAS
    are equal) get one rank each, in video order; sklearn's average precision would give the
    tied group one precision (2/3 here instead of 7/12)."""
    tied = np.zeros((5, 2))
    labels = np.array([[0], [1], [1]])
    assert classification_map([tied, tied, tied], labels) == pytest.approx(7 / 12)
    ranked = ranked_average_precision(np.array([[0.9], [0.5], [0.5]]), np.array([[1], [0], [1]]))
    np.testing.assert_allclose(ranked, [(1 + 2 / 3) / 2])
