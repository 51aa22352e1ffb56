"""Training loop (spec §4): determinism, resume, model selection, learning on tiny data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from co2net_pipeline.method.inference import run_inference
from co2net_pipeline.method.losses import TERMS, LossConfig
from co2net_pipeline.method.model import ModelConfig
from co2net_pipeline.method.sampler import make_sampling_plan
from co2net_pipeline.method.training import (
    TrainConfig,
    TrainResult,
    seed_everything,
    select_device,
    train_model,
)

D, C, N = 32, 4, 16
MODEL = ModelConfig(feature_dim=D, n_classes=C, attention_hidden=16)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    """Tiny videos: noise, plus a class-specific pattern (in both modalities) inside one
    segment of each video, so weak labels are learnable."""
    rng = np.random.default_rng(0)
    ids = [f"video_{i:03d}" for i in range(N)]
    labels = np.zeros((N, C), dtype=np.float32)
    labels[np.arange(N), np.arange(N) % C] = 1
    feats = {}
    for i, vid in enumerate(ids):
        t = int(rng.integers(24, 64))
        f = 0.5 * rng.standard_normal((t, 2 * D)).astype(np.float32)
        c = i % C
        start = int(rng.integers(0, t - 10))
        f[start : start + 10, c * 8 : (c + 1) * 8] += 2.0
        f[start : start + 10, D + c * 8 : D + (c + 1) * 8] += 2.0
        feats[vid] = f
    label_map = dict(zip(ids, labels, strict=True))
    return ids, labels, feats, label_map


def _train(data, max_iter=6, plan_iters=None, checkpoint_dir=None, **overrides) -> TrainResult:
    ids, labels, feats, label_map = data
    plan = make_sampling_plan(ids, labels, plan_iters or max_iter, seed=1)
    cfg = TrainConfig(
        **{"max_iter": max_iter, "interval": 3, "max_seqlen": 24, "lr": 1e-3, **overrides}
    )
    return train_model(
        feats, label_map, plan, MODEL, LossConfig(), cfg, checkpoint_dir, progress=False
    )


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_result_layout(data):
    result = _train(data, max_iter=4)
    assert list(result.history.columns) == ["iteration", *TERMS, "total"]
    np.testing.assert_array_equal(result.history["iteration"], np.arange(4))
    assert result.selected_iteration == 3 and result.selection == "last"
    assert next(result.model.parameters()).device.type == "cpu"
    assert not result.model.training
    _assert_same_weights(result.model.state_dict(), result.state_dict)
    assert np.isfinite(result.history.drop(columns="iteration").to_numpy()).all()
    assert result.seconds_per_iteration > 0


def test_same_seed_identical_weights_different_seed_differs(data):
    a = _train(data, max_iter=3)
    b = _train(data, max_iter=3)
    _assert_same_weights(a.state_dict, b.state_dict)
    pd.testing.assert_frame_equal(a.history, b.history)
    c = _train(data, max_iter=3, seed=7)
    assert not torch.equal(a.state_dict["fusion.0.weight"], c.state_dict["fusion.0.weight"])


def test_resume_equals_uninterrupted(data, tmp_path):
    ids, labels, feats, label_map = data
    plan = make_sampling_plan(ids, labels, 6, seed=1)
    cfg = TrainConfig(max_iter=6, interval=3, max_seqlen=24, lr=1e-3)
    full = train_model(
        feats, label_map, plan, MODEL, LossConfig(), cfg, tmp_path / "full", progress=False
    )
    assert (tmp_path / "full" / "last.pt").exists()

    class Interrupt(Exception):
        pass

    def crash_at_4(itr, metrics):
        if itr == 4:
            raise Interrupt

    ckpt_dir = tmp_path / "interrupted"
    with pytest.raises(Interrupt):
        train_model(
            feats,
            label_map,
            plan,
            MODEL,
            LossConfig(),
            cfg,
            ckpt_dir,
            on_metrics=crash_at_4,
            progress=False,
        )
    saved = torch.load(ckpt_dir / "last.pt", weights_only=True)
    assert saved["iteration"] == 3
    assert not list(ckpt_dir.glob("*.tmp"))  # atomic write leaves no temporary file

    seen = []
    resumed_cfg = TrainConfig(max_iter=6, interval=3, max_seqlen=24, lr=1e-3, resume=True)
    resumed = train_model(
        feats,
        label_map,
        plan,
        MODEL,
        LossConfig(),
        resumed_cfg,
        ckpt_dir,
        on_metrics=lambda itr, m: seen.append(itr),
        progress=False,
    )
    assert seen == [4, 5]
    _assert_same_weights(full.state_dict, resumed.state_dict)
    pd.testing.assert_frame_equal(full.history, resumed.history)


def test_resume_refuses_a_different_plan(data, tmp_path):
    ids, labels, feats, label_map = data
    cfg = TrainConfig(max_iter=4, interval=3, max_seqlen=24)
    train_model(
        feats,
        label_map,
        make_sampling_plan(ids, labels, 4, seed=1),
        MODEL,
        LossConfig(),
        cfg,
        tmp_path,
        progress=False,
    )
    other = make_sampling_plan(ids, labels, 6, seed=2)
    with pytest.raises(ValueError, match="sampling plan differs"):
        train_model(
            feats,
            label_map,
            other,
            MODEL,
            LossConfig(),
            TrainConfig(max_iter=6, interval=3, max_seqlen=24, resume=True),
            tmp_path,
            progress=False,
        )
    with pytest.raises(ValueError, match="train config differs"):
        train_model(
            feats,
            label_map,
            make_sampling_plan(ids, labels, 6, seed=1),
            MODEL,
            LossConfig(),
            TrainConfig(max_iter=6, interval=3, max_seqlen=24, resume=True, lr=1.0),
            tmp_path,
            progress=False,
        )


def test_heldout_selection_keeps_best_and_does_not_disturb_training(data, tmp_path):
    ids, labels, feats, label_map = data
    plan = make_sampling_plan(ids, labels, 10, seed=1)
    scores = {3: 0.2, 6: 0.9, 9: 0.5}
    snapshots = {}

    def score(model, itr):
        assert not model.training
        torch.rand(5)  # a scorer that consumes random numbers must not change training
        snapshots[itr] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return scores[itr]

    cfg = TrainConfig(max_iter=10, interval=3, max_seqlen=24, selection="heldout")
    result = train_model(
        feats,
        label_map,
        plan,
        MODEL,
        LossConfig(),
        cfg,
        tmp_path,
        selection_score=score,
        progress=False,
    )
    assert result.selected_iteration == 6
    assert list(result.selection_scores["iteration"]) == [3, 6, 9]
    assert "best heldout" in result.selection_note
    _assert_same_weights(result.state_dict, snapshots[6])
    _assert_same_weights(torch.load(tmp_path / "best.pt", weights_only=True), snapshots[6])
    last = train_model(
        feats,
        label_map,
        plan,
        MODEL,
        LossConfig(),
        TrainConfig(max_iter=10, interval=3, max_seqlen=24),
        None,
        progress=False,
    )
    final = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    _assert_same_weights(last.state_dict, final)


@pytest.mark.parametrize("metrics_every", [4, 100])
def test_buffered_metrics_change_nothing(data, metrics_every):
    ids, labels, feats, label_map = data
    plan = make_sampling_plan(ids, labels, 11, seed=1)

    def run(every):
        calls = []
        result = train_model(
            feats,
            label_map,
            plan,
            MODEL,
            LossConfig(),
            TrainConfig(
                max_iter=11, interval=3, max_seqlen=24, selection="heldout", metrics_every=every
            ),
            None,
            on_metrics=lambda itr, metrics: calls.append((itr, metrics)),
            selection_score=lambda model, itr: float(itr % 5),
            progress=False,
        )
        return result, calls

    (a, calls_a), (b, calls_b) = run(1), run(metrics_every)
    assert calls_a == calls_b
    assert [itr for itr, _ in calls_b] == list(range(11))
    assert [itr for itr, m in calls_b if "selection_score" in m] == [3, 6, 9]
    pd.testing.assert_frame_equal(a.history, b.history)
    _assert_same_weights(a.state_dict, b.state_dict)
    assert b.selected_iteration == 9


def test_selection_needs_a_score_and_falls_back_without_scoring_point(data):
    with pytest.raises(ValueError, match="selection_score"):
        _train(data, max_iter=2, selection="oracle_test")
    ids, labels, feats, label_map = data
    cfg = TrainConfig(max_iter=2, interval=5, max_seqlen=24, selection="oracle_test")
    result = train_model(
        feats,
        label_map,
        make_sampling_plan(ids, labels, 2, seed=1),
        MODEL,
        LossConfig(),
        cfg,
        selection_score=lambda m, i: 1.0,
        progress=False,
    )
    assert result.selected_iteration == 1 and "no scoring point" in result.selection_note


def test_features_on_device_gives_identical_training(data):
    a = _train(data, max_iter=3)
    b = _train(data, max_iter=3, features_on_device=True)
    _assert_same_weights(a.state_dict, b.state_dict)


def test_bf16_autocast_trains_on_cpu_close_to_float32(data):
    a = _train(data, max_iter=40, interval=40)
    b = _train(data, max_iter=40, interval=40, bf16=True)
    assert all(p.dtype == torch.float32 for p in b.state_dict.values())
    # autocast is really on (bf16 rounding changes the weights) ...
    assert not torch.equal(a.state_dict["fusion.0.weight"], b.state_dict["fusion.0.weight"])
    # ... and the losses follow the float32 run closely
    total_a, total_b = a.history["total"].to_numpy(), b.history["total"].to_numpy()
    assert abs(total_b[0] - total_a[0]) < 0.02 * total_a[0]
    assert abs(total_b[-10:].mean() - total_a[-10:].mean()) < 0.1 * total_a[-10:].mean()


def test_zero_rows_truncate_the_batch(data, monkeypatch):
    """Reference quirk: the batch is cut to the largest count of non-zero sampled snippets."""
    import co2net_pipeline.method.training as training

    ids, labels, feats, label_map = data
    zeroed = {k: v.copy() for k, v in feats.items()}
    for v in zeroed.values():
        v[len(v) // 2 :] = 0.0
    plan = make_sampling_plan(ids, labels, 2, seed=1)
    widths = []
    original = training.co2net_loss

    def spy(outputs, y, loss_cfg):
        widths.append(outputs.cas.shape[1])
        return original(outputs, y, loss_cfg)

    monkeypatch.setattr(training, "co2net_loss", spy)
    train_model(
        zeroed,
        label_map,
        plan,
        MODEL,
        LossConfig(),
        TrainConfig(max_iter=2, max_seqlen=24),
        progress=False,
    )
    off = TrainConfig(max_iter=2, max_seqlen=24, truncate_to_valid_length=False)
    train_model(zeroed, label_map, plan, MODEL, LossConfig(), off, progress=False)
    assert all(w < 24 for w in widths[:2]) and widths[2:] == [24, 24]


def test_training_reduces_the_loss_and_learns_the_classes(data):
    ids, _, feats, _ = data
    result = _train(data, max_iter=80, interval=40)
    total = result.history["total"].to_numpy()
    mil = result.history["mil_raw"].to_numpy()
    assert total[-20:].mean() < 0.9 * total[:10].mean()
    assert mil[-20:].mean() < 0.8 * mil[:10].mean()
    # video-level class = argmax of the mean top-3 CAS logits, as a weak classifier
    outputs = run_inference(result.model, feats)
    predicted = [np.sort(outputs[v]["cas"][:, :C], axis=0)[-3:].mean(0).argmax() for v in ids]
    assert np.mean(np.array(predicted) == np.arange(N) % C) >= 0.75


def test_config_and_plan_errors(data):
    ids, labels, feats, label_map = data
    with pytest.raises(ValueError, match="selection"):
        TrainConfig(selection="best")
    with pytest.raises(ValueError, match="unknown keys"):
        TrainConfig.from_dict({"learning_rate": 1.0})
    # the training node's own keys are the `training` group's (params.schema), not the loop's
    with pytest.raises(ValueError, match=r"unknown keys \['checkpoint_dir'\]"):
        TrainConfig.from_dict({"checkpoint_dir": "x"})
    with pytest.raises(ValueError, match="exactly 10 slots"):
        train_model(
            feats,
            label_map,
            make_sampling_plan(ids, labels, 3, seed=1),
            MODEL,
            LossConfig(),
            TrainConfig(max_iter=5),
            progress=False,
        )
    with pytest.raises(ValueError, match="64 columns, expected 32"):
        wide = ModelConfig(feature_dim=16, n_classes=C)
        plan = make_sampling_plan(ids, labels, 1, seed=1)
        train_model(
            feats, label_map, plan, wide, LossConfig(), TrainConfig(max_iter=1), progress=False
        )
    missing = {k: v for k, v in feats.items() if k != ids[0]}
    plan = make_sampling_plan(ids, labels, 50, seed=1)
    with pytest.raises(ValueError, match=f"{ids[0]}: in the sampling plan but has no features"):
        train_model(
            missing, label_map, plan, MODEL, LossConfig(), TrainConfig(max_iter=50), progress=False
        )


def test_select_device_and_seed():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")
    seed_everything(5)
    a = (np.random.rand(), torch.rand(1))
    seed_everything(5)
    assert (np.random.rand(), torch.rand(1)) == a


def test_cpu_threads_applied_and_restored(data):
    before = torch.get_num_threads()
    seen = []
    ids, labels, feats, label_map = data
    train_model(
        feats,
        label_map,
        make_sampling_plan(ids, labels, 1, seed=1),
        MODEL,
        LossConfig(),
        TrainConfig(max_iter=1, max_seqlen=24, cpu_threads=2),
        on_metrics=lambda itr, m: seen.append(torch.get_num_threads()),
        progress=False,
    )
    assert seen == [2]
    assert torch.get_num_threads() == before


def test_finished_run_can_be_extended(data, tmp_path):
    """A plan is a prefix of any longer plan, so a 4-iteration run resumed to 6 iterations
    equals a 6-iteration run."""
    ids, labels, feats, label_map = data
    full = _train(data, max_iter=6)
    short = _train(data, max_iter=4, checkpoint_dir=tmp_path)
    assert short.selected_iteration == 3
    longer = _train(data, max_iter=6, checkpoint_dir=tmp_path, resume=True)
    _assert_same_weights(full.state_dict, longer.state_dict)
    pd.testing.assert_frame_equal(full.history, longer.history)


def test_test_curve_is_recorded_and_does_not_change_training(data):
    calls = []

    def curve(model, itr):
        assert not model.training  # scored in eval mode
        calls.append(itr)
        # a draw from the torch stream: must not leak into the training's dropout stream
        return {"avg_0.1-0.7": float(torch.rand(())), "map_0.5": itr / 10}

    ids, labels, feats, label_map = data
    plan = make_sampling_plan(ids, labels, 7, seed=1)
    cfg = TrainConfig(max_iter=7, interval=3, max_seqlen=24, lr=1e-3)
    args = (feats, label_map, plan, MODEL, LossConfig(), cfg)
    plain = train_model(*args, progress=False)
    with_curve = train_model(*args, progress=False, test_curve=curve, test_curve_every=2)
    _assert_same_weights(plain.state_dict, with_curve.state_dict)
    assert calls == [2, 4, 6]
    assert list(with_curve.test_curve["iteration"]) == [2, 4, 6]
    columns = ["iteration", "avg_0.1-0.7", "map_0.5", "reference_point"]
    assert list(with_curve.test_curve.columns) == columns
    # 6 is both a test point and the final iteration: the original scores it too
    assert list(with_curve.test_curve["reference_point"]) == [1.0, 1.0, 1.0]
    assert plain.test_curve.empty


def test_test_curve_survives_resume(data, tmp_path):
    def curve(model, itr):
        return {"avg_0.1-0.7": itr / 100}

    ids, labels, feats, label_map = data
    plan = make_sampling_plan(ids, labels, 8, seed=1)
    first = TrainConfig(max_iter=4, interval=3, max_seqlen=24)
    args = (feats, label_map, plan, MODEL, LossConfig())
    train_model(*args, first, tmp_path, progress=False, test_curve=curve, test_curve_every=2)
    resumed = train_model(
        *args,
        TrainConfig(max_iter=8, interval=3, max_seqlen=24, resume=True),
        tmp_path,
        progress=False,
        test_curve=curve,
        test_curve_every=2,
    )
    assert list(resumed.test_curve["iteration"]) == [2, 3, 4, 6, 7]


def test_reference_stream_drives_the_snippets_and_must_match_the_plan(data):
    from co2net_pipeline.method.sampler import ReferenceBatchStream, reference_sampling_plan

    ids, labels, feats, label_map = data
    lengths = [len(feats[v]) for v in ids]
    kwargs = {"batch_size": 10, "n_similar": 3, "max_seqlen": 24}
    plan = reference_sampling_plan(ids, labels, lengths, 4, seed=5, **kwargs)
    assert (plan["snippet_seed"] == -1).all()
    cfg = TrainConfig(max_iter=4, interval=3, max_seqlen=24, seed=5)
    args = (feats, label_map, plan, MODEL, LossConfig(), cfg)

    def stream(seed):
        return ReferenceBatchStream(labels, lengths, seed, video_ids=ids, **kwargs)

    a = train_model(*args, progress=False, reference_stream=stream(5))
    b = train_model(*args, progress=False, reference_stream=stream(5))
    _assert_same_weights(a.state_dict, b.state_dict)
    with pytest.raises(ValueError, match="iteration 0: the reference stream drew"):
        train_model(*args, progress=False, reference_stream=stream(6))


def test_a_run_shorter_than_interval_and_test_curve_still_saves_and_scores_its_end(data, tmp_path):
    """A quick run (`--params training.max_iter=4` under interval 500, test_curve_every 200):
    the final iteration is checkpointed and scored; nothing before it."""
    ids, labels, feats, label_map = data
    calls = []

    def curve(model, itr):
        calls.append(itr)
        return {"avg_0.1-0.7": 0.5}

    result = train_model(
        feats,
        label_map,
        make_sampling_plan(ids, labels, 4, seed=1),
        MODEL,
        LossConfig(),
        TrainConfig(max_iter=4, interval=500, max_seqlen=24),
        tmp_path,
        progress=False,
        test_curve=curve,
        test_curve_every=200,
    )
    assert calls == [3] and list(result.test_curve["iteration"]) == [3]
    assert torch.load(tmp_path / "last.pt", weights_only=False)["iteration"] == 3
    assert result.selected_iteration == 3
