"""Detection AP / mAP (spec §6): golden cases through the CLI code path, properties, edge cases."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from golden import PROJECT_ROOT, golden_cases
from hypothesis import given, settings
from hypothesis import strategies as st

from co2net_pipeline.cli import main as co2net
from co2net_pipeline.method.metric import (
    ACTIVITYNET_TIOU,
    THUMOS14_TIOU,
    average_map,
    evaluate_detections,
)
from co2net_pipeline.reports.evaluation_files import (
    detections_to_activitynet_json,
    evaluate_files,
    load_ground_truth,
    load_predictions,
)

SHIPPED = {"thumos14", "activitynet12"}
AP_TOL = 1e-6


def _numeric_keys(mapping: dict) -> dict[float, float]:
    return {float(k): float(v) for k, v in mapping.items()}


def _load_reference_loops():
    spec = importlib.util.spec_from_file_location(
        "reference_loops", PROJECT_ROOT / "tests" / "reference_loops.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------
# Golden cases, through `co2net evaluate`


@pytest.mark.parametrize("case", golden_cases("evaluation"))
def test_golden_evaluation(case: Path, tmp_path: Path, capsys) -> None:
    expected = json.loads((case / "expected.json").read_text())
    predictions = case / "predictions.csv"
    if not predictions.is_file():
        predictions = case / expected.get("predictions", "predictions.json")
    source = expected["ground_truth"]
    if source not in SHIPPED:
        source = str(case / source)
    output = tmp_path / "metrics.json"

    args = ["evaluate", "--predictions", str(predictions), "--ground-truth", source]
    args += ["--units", expected["units"], "--tiou", ",".join(map(str, expected["tiou"]))]
    if expected["subset"] is not None:
        args += ["--subset", expected["subset"]]
    assert co2net([*args, "--output", str(output)]) == 0
    assert "mAP" in capsys.readouterr().out
    got = json.loads(output.read_text())

    assert got["n_predictions"] == expected["n_predictions"]
    got_map, exp_map = _numeric_keys(got["map"]), _numeric_keys(expected["map"])
    assert sorted(got_map) == pytest.approx(sorted(exp_map))
    for (_, g), (_, e) in zip(sorted(got_map.items()), sorted(exp_map.items()), strict=True):
        assert g == pytest.approx(e, abs=AP_TOL)
    for name, value in expected["average"].items():
        assert got["average"][name] == pytest.approx(value, abs=AP_TOL), name
    assert set(got["per_class_ap"]) == set(expected["per_class_ap"])
    for name, per_tiou in expected["per_class_ap"].items():
        g = sorted(_numeric_keys(got["per_class_ap"][name]).items())
        e = sorted(_numeric_keys(per_tiou).items())
        assert [k for k, _ in g] == pytest.approx([k for k, _ in e])
        assert [v for _, v in g] == pytest.approx([v for _, v in e], abs=AP_TOL), name


# --------------------------------------------------------------------------------------------
# Properties

segment = st.tuples(
    st.sampled_from(["v1", "v2", "v3"]),
    st.integers(0, 60),
    st.integers(0, 15),
    st.sampled_from(["a", "b", "c"]),
)


def _gt_table(rows) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "video_id": [r[0] for r in rows],
            "t_start": [float(r[1]) for r in rows],
            "t_end": [float(r[1] + r[2]) for r in rows],
            "label": [r[3] for r in rows],
        }
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(segment, min_size=1, max_size=25), st.sampled_from([THUMOS14_TIOU, ACTIVITYNET_TIOU])
)
def test_perfect_predictions_score_one(rows, tiou) -> None:
    gt = _gt_table(rows)
    predictions = gt.assign(score=1.0)
    result = evaluate_detections(predictions, gt, tiou)
    assert all(v == pytest.approx(1.0) for v in result.map.values())
    assert np.allclose(result.per_class_ap.to_numpy(), 1.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(segment, min_size=1, max_size=15),
    st.lists(segment, min_size=0, max_size=30),
    st.randoms(use_true_random=False),
)
def test_map_bounded_and_invariant_to_row_order(gt_rows, pred_rows, rnd) -> None:
    gt = _gt_table(gt_rows)
    predictions = _gt_table(pred_rows)
    # Unique scores: with ties the rank (and so AP) legitimately depends on the order.
    predictions["score"] = rnd.sample(range(1000), len(predictions)) if len(predictions) else []
    predictions["score"] = predictions["score"].astype(float) / 1000
    result = evaluate_detections(predictions, gt, THUMOS14_TIOU)
    ap = result.per_class_ap.to_numpy()
    assert np.all(ap >= 0) and np.all(ap <= 1 + 1e-12)
    assert all(0 <= v <= 1 + 1e-12 for v in result.map.values())
    shuffled = predictions.sample(frac=1.0, random_state=rnd.randint(0, 2**31)).reset_index(
        drop=True
    )
    again = evaluate_detections(shuffled, gt.iloc[::-1].reset_index(drop=True), THUMOS14_TIOU)
    assert np.allclose(again.per_class_ap.to_numpy(), ap, atol=1e-12)


@pytest.mark.parametrize("seed", range(2))
def test_matches_reference_loops(seed: int) -> None:
    """Same AP as the reference's per-prediction walk on random continuous data (no ties)."""
    ref = _load_reference_loops()
    rng = np.random.default_rng(seed)
    n_gt, n_pred = 40, 300
    gt_start = rng.uniform(0, 100, n_gt)
    gt = pd.DataFrame(
        {
            "video_id": rng.choice(["v1", "v2", "v3", "v4"], n_gt),
            "t_start": gt_start,
            "t_end": gt_start + rng.uniform(0.5, 15, n_gt),
            "label": rng.choice(["a", "b", "c"], n_gt),
        }
    )
    base = gt.sample(n_pred, replace=True, random_state=seed).reset_index(drop=True)
    jitter = rng.normal(0, 2.0, size=(n_pred, 2))
    predictions = pd.DataFrame(
        {
            "video_id": np.where(rng.random(n_pred) < 0.05, "unknown", base["video_id"]),
            "t_start": base["t_start"] + jitter[:, 0],
            "t_end": base["t_end"] + jitter[:, 1],
            "label": np.where(
                rng.random(n_pred) < 0.1, rng.choice(["a", "b", "c", "zz"], n_pred), base["label"]
            ),
            "score": rng.permutation(n_pred) / n_pred + 1e-3,
        }
    )
    ours = evaluate_detections(predictions, gt, THUMOS14_TIOU).per_class_ap
    theirs = ref.reference_evaluate(predictions, gt, THUMOS14_TIOU)
    np.testing.assert_allclose(ours.to_numpy(), theirs.loc[ours.index].to_numpy(), atol=1e-12)


# --------------------------------------------------------------------------------------------
# Reference behaviour on hand-made cases


def _pred(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["video_id", "t_start", "t_end", "label", "score"])


def _gt(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["video_id", "t_start", "t_end", "label"])


def test_zero_length_segments_give_nan_iou_and_match() -> None:
    gt = _gt([("v", 5.0, 5.0, "a")])
    # Zero-length vs zero-length elsewhere in the same video is 0/0 = NaN too: still a match.
    result = evaluate_detections(_pred([("v", 9.0, 9.0, "a", 0.9)]), gt, [0.5, 0.9])
    assert result.map == {0.5: 1.0, 0.9: 1.0}


def test_zero_length_prediction_against_positive_gt_is_a_false_positive() -> None:
    gt = _gt([("v", 0.0, 10.0, "a")])
    result = evaluate_detections(_pred([("v", 5.0, 5.0, "a", 0.9)]), gt, [0.1])
    assert result.map[0.1] == 0.0


def test_iou_equal_to_threshold_matches() -> None:
    gt = _gt([("v", 0.0, 10.0, "a")])
    result = evaluate_detections(_pred([("v", 0.0, 5.0, "a", 0.9)]), gt, [0.4, 0.5, 0.6])
    assert result.map == {0.4: 1.0, 0.5: 1.0, 0.6: 0.0}


def test_duplicate_is_a_false_positive_and_fall_through_reaches_second_gt() -> None:
    gt = _gt([("v", 0.0, 10.0, "a"), ("v", 2.0, 12.0, "a")])
    # p1 takes GT0 (IoU 1); p2 has best GT0 (IoU 0.82, taken) and falls through to GT1
    # (IoU 7/13 = 0.54); p3 duplicates p1 and finds both taken.
    preds = _pred(
        [("v", 0.0, 10.0, "a", 0.9), ("v", -1.0, 9.0, "a", 0.8), ("v", 0.0, 10.0, "a", 0.7)]
    )
    result = evaluate_detections(preds, gt, [0.5, 0.7])
    # 0.5: TP, TP, FP → AP 1.0; 0.7: TP, FP (0.54 < 0.7), FP → AP 0.5.
    assert result.map[0.5] == pytest.approx(1.0)
    assert result.map[0.7] == pytest.approx(0.5)


def test_equal_tiou_ties_go_to_the_later_gt() -> None:
    # The prediction has IoU 0.5 with both GT; the reference reverses an ascending argsort
    # (stable on small arrays in its NumPy), so the later GT is taken and the second prediction,
    # which only overlaps the earlier GT, still finds it free.
    gt = _gt([("v", 0.0, 10.0, "a"), ("v", 5.0, 15.0, "a")])
    preds = _pred([("v", 5.0, 10.0, "a", 0.9), ("v", 0.0, 9.0, "a", 0.8)])
    result = evaluate_detections(preds, gt, [0.5])
    assert result.map[0.5] == pytest.approx(1.0)


def test_unknown_video_is_a_false_positive_and_unknown_class_is_ignored() -> None:
    gt = _gt([("v", 0.0, 10.0, "a"), ("w", 0.0, 10.0, "b")])
    base = [("v", 0.0, 10.0, "a", 0.5), ("w", 0.0, 10.0, "b", 0.5)]
    clean = evaluate_detections(_pred(base), gt, [0.5])
    assert clean.map[0.5] == 1.0
    unknown_class = evaluate_detections(_pred(base + [("v", 0.0, 10.0, "zz", 0.9)]), gt, [0.5])
    assert unknown_class.map[0.5] == 1.0
    unknown_video = evaluate_detections(_pred(base + [("x", 0.0, 10.0, "a", 0.9)]), gt, [0.5])
    assert unknown_video.per_class_ap.loc["a", 0.5] == pytest.approx(0.5)
    other_video = evaluate_detections(_pred(base + [("w", 0.0, 10.0, "a", 0.9)]), gt, [0.5])
    assert other_video.per_class_ap.loc["a", 0.5] == pytest.approx(0.5)


def test_class_without_predictions_counts_as_zero() -> None:
    gt = _gt([("v", 0.0, 10.0, "a"), ("v", 20.0, 30.0, "b")])
    result = evaluate_detections(_pred([("v", 0.0, 10.0, "a", 0.5)]), gt, [0.5])
    assert result.per_class_ap.loc["b", 0.5] == 0.0
    assert result.map[0.5] == pytest.approx(0.5)


def test_empty_predictions() -> None:
    gt = _gt([("v", 0.0, 10.0, "a")])
    result = evaluate_detections(_pred([]), gt, THUMOS14_TIOU)
    assert all(v == 0.0 for v in result.map.values())


def test_interpolated_ap_uses_precision_envelope() -> None:
    gt = _gt([("v", 0.0, 10.0, "a"), ("v", 20.0, 30.0, "a")])
    # Ranks: FP, TP, TP → precision 0, 1/2, 2/3; envelope 2/3 at both recall steps.
    preds = _pred(
        [("v", 50.0, 60.0, "a", 0.9), ("v", 0.0, 10.0, "a", 0.8), ("v", 20.0, 30.0, "a", 0.7)]
    )
    assert evaluate_detections(preds, gt, [0.5]).map[0.5] == pytest.approx(2 / 3)


def test_average_keys() -> None:
    thumos = average_map(THUMOS14_TIOU, np.arange(9) / 10)
    assert set(thumos) == {"0.1:0.5", "0.1:0.7", "0.1:0.9"}
    assert thumos["0.1:0.5"] == pytest.approx(np.mean(np.arange(5) / 10))
    assert thumos["0.1:0.7"] == pytest.approx(np.mean(np.arange(7) / 10))
    anet = average_map(ACTIVITYNET_TIOU, np.ones(10))
    assert set(anet) == {"0.5:0.95"}


def test_result_dict_and_table() -> None:
    gt = _gt([("v", 0.0, 10.0, "a")])
    result = evaluate_detections(_pred([("v", 0.0, 10.0, "a", 0.5)]), gt, [0.1, 0.5])
    data = result.to_dict()
    assert data["map"] == {"0.1": 1.0, "0.5": 1.0}
    assert data["per_class_ap"] == {"a": {"0.1": 1.0, "0.5": 1.0}}
    assert data["n_predictions"] == 1 and data["n_ground_truth"] == 1
    assert "100.00" in result.format_table()


def test_classes_without_gt_are_rejected() -> None:
    gt = _gt([("v", 0.0, 10.0, "a")])
    with pytest.raises(ValueError, match="without any ground-truth instance"):
        evaluate_detections(_pred([]), gt, [0.5], classes=["a", "b"])


# --------------------------------------------------------------------------------------------
# Files and the command


def test_load_predictions_errors_name_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("video_id,t_start,t_end,label\nv,0,1,a\n")
    with pytest.raises(ValueError, match=r"p\.csv.*missing column.*score"):
        load_predictions(path)
    path.write_text("video_id,t_start,t_end,label,score\nv,0,1,a,0.5\nv,0,abc,a,0.5\n")
    with pytest.raises(
        ValueError, match=r"p\.csv: row 3 \(video v\): t_end 'abc' is not a finite number"
    ):
        load_predictions(path)
    path.write_text("video_id,t_start,t_end,label,score\nv,0,1,a,\n")
    with pytest.raises(ValueError, match=r"row 2.*score"):
        load_predictions(path)
    bad_json = tmp_path / "p.json"
    bad_json.write_text(json.dumps({"results": {"v": [{"label": "a", "score": 0.5}]}}))
    with pytest.raises(ValueError, match=r"p\.json: video v: detection 0 is malformed"):
        load_predictions(bad_json)
    with pytest.raises(ValueError, match="not found"):
        load_predictions(tmp_path / "missing.csv")


def test_activitynet_json_round_trip(tmp_path: Path) -> None:
    detections = pd.DataFrame(
        {
            "video_id": ["v1", "v1", "v2"],
            "label": ["a", "b", "a"],
            "score": [0.9, 0.5, 0.1],
            "t_start_s": [0.0, 1.28, 3.2],
            "t_end_s": [0.64, 2.56, 6.4],
        }
    )
    data = detections_to_activitynet_json(detections)
    assert data["results"]["v1"][1] == {"label": "b", "score": 0.5, "segment": [1.28, 2.56]}
    path = tmp_path / "det.json"
    path.write_text(json.dumps(data))
    loaded = load_predictions(path)
    pd.testing.assert_frame_equal(
        loaded[["video_id", "label", "score"]],
        detections[["video_id", "label", "score"]],
        check_dtype=False,
    )
    assert loaded["t_start"].tolist() == detections["t_start_s"].tolist()


def test_load_ground_truth_units_and_rounding(tmp_path: Path) -> None:
    path = tmp_path / "gt.csv"
    # 8.0 s → 12.5 snippets → 12 (half to even); 8.32 s → 13.0 → 13.
    path.write_text("video_id,t_start,t_end,label\nclip,8.0,8.32,a\n")
    gt, tiou, annotations = load_ground_truth(str(path), None, "snippets")
    assert gt[["t_start", "t_end"]].values.tolist() == [[12.0, 13.0]]
    assert tiou == THUMOS14_TIOU and annotations.classlist == ["a"]
    seconds, _, _ = load_ground_truth(str(path), None, "seconds")
    assert seconds[["t_start", "t_end"]].values.tolist() == [[8.0, 8.32]]
    thumos, tiou, _ = load_ground_truth("thumos14", None, "snippets")
    assert len(thumos) == 3358 and tiou == THUMOS14_TIOU
    with pytest.raises(ValueError, match="neither a shipped dataset"):
        load_ground_truth("nope", None, "snippets")
    with pytest.raises(ValueError, match="units"):
        load_ground_truth("thumos14", None, "frames")


def test_evaluate_warnings_and_atomic_output(tmp_path: Path, capsys) -> None:
    gt = tmp_path / "gt.csv"
    gt.write_text("video_id,t_start,t_end,label\nclip,0.0,6.4,a\nclip,12.8,19.2,b\n")
    preds = tmp_path / "pred.csv"
    preds.write_text(
        "video_id,t_start,t_end,label,score\n"
        "clip,0,10,a,0.9\n"
        "other,0,10,a,0.8\n"
        "clip,20,30,zz,0.7\n"
        "clip,30,25,b,0.6\n"
    )
    # The reversed row (30 → 25) has IoU 0 with b's GT [20, 30]; had it been 30 → 20, the signed
    # union would be 0 and the reference's 0/0 = NaN would count it as a match.
    out = tmp_path / "sub" / "metrics.json"
    args = ["--predictions", str(preds), "--ground-truth", str(gt), "--tiou", "0.5"]
    assert co2net(["evaluate", *args, "--output", str(out)]) == 0
    text = capsys.readouterr().err
    assert "1 prediction(s) for videos outside the ground truth" in text
    assert "1 prediction(s) with a label outside the evaluated classes" in text
    assert "1 prediction(s) with t_end < t_start" in text
    data = json.loads(out.read_text())
    assert {k: v for k, v in data["warnings"].items() if v} == {
        "unknown_videos": 1,
        "unknown_classes": 1,
        "reversed_segments": 1,
    }
    assert data["per_class_ap"]["a"]["0.5"] == pytest.approx(1.0)
    assert data["per_class_ap"]["b"]["0.5"] == 0.0
    assert math.isclose(data["map"]["0.5"], 0.5)
    assert [p.name for p in out.parent.iterdir()] == ["metrics.json"]


def test_evaluate_files_rejects_bad_input(tmp_path: Path) -> None:
    preds = tmp_path / "pred.csv"
    preds.write_text("video_id,t_start,t_end,label,score\nv,0,1,a,0.5\n")
    with pytest.raises(ValueError, match="units"):
        evaluate_files(str(preds), "thumos14", units="minutes")
    with pytest.raises(ValueError, match="tIoU thresholds must lie strictly between 0 and 1"):
        evaluate_files(str(preds), "thumos14", tiou=[0.5, 1.5])
    with pytest.raises(ValueError, match="no video in subset"):
        evaluate_files(str(preds), "thumos14", subset="nonexistent")
