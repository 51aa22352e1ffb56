"""CO2-Net model (spec §2): sizes, shapes, variants, initialisation; whole-video inference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from co2net_pipeline.method.inference import padded_batches, run_inference
from co2net_pipeline.method.model import (
    CO2Net,
    ModelConfig,
    ModelOutputs,
    build_model,
    count_parameters,
    load_reference_state_dict,
)

D = 32
C = 5
TINY = {"feature_dim": D, "n_classes": C, "attention_hidden": 16}
# The reference THUMOS14 sizes (ModelConfig's defaults are conf/base's CPU-sized model).
REFERENCE = {"feature_dim": 1024, "attention_hidden": 512}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(**overrides) -> CO2Net:
    return build_model({**TINY, **overrides})


def meta_model(**cfg) -> CO2Net:
    with torch.device("meta"):
        return build_model({**REFERENCE, **cfg})


# --- sizes ----------------------------------------------------------------------------------


def test_param_count_thumos14_reference():
    assert count_parameters(meta_model()) == 34_133_015


def test_param_count_activitynet12_reference():
    model = meta_model(variant="activitynet12", n_classes=100)
    assert count_parameters(model) == 34_296_935


def test_param_count_with_unused_feat_encoder():
    assert count_parameters(meta_model(include_feat_encoder=True)) == 46_717_975


def test_param_count_per_part():
    model = meta_model()
    assert count_parameters(model.vAttn) == 8_654_337
    assert count_parameters(model.fAttn) == 8_654_337
    assert count_parameters(model.fusion) == 4_196_352
    assert count_parameters(model.classifier) == 12_627_989


def test_full_size_forward_on_cpu():
    torch.manual_seed(0)
    model = build_model(REFERENCE).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 9, 2048))
    assert out.feat.shape == (1, 9, 2048)
    assert out.cas.shape == (1, 9, 21)
    assert out.attn.shape == out.v_atn.shape == out.f_atn.shape == (1, 9, 1)


# --- forward ----------------------------------------------------------------------------------


def test_output_shapes_and_ranges():
    torch.manual_seed(0)
    model = tiny().eval()
    out = model(torch.randn(3, 17, 2 * D))
    assert isinstance(out, ModelOutputs)
    assert out.feat.shape == (3, 17, 2 * D)
    assert out.cas.shape == (3, 17, C + 1)
    for a in (out.attn, out.v_atn, out.f_atn):
        assert a.shape == (3, 17, 1)
        assert torch.all((a > 0) & (a < 1))
    torch.testing.assert_close(out.attn, (out.v_atn + out.f_atn) / 2, rtol=0, atol=0)


def test_single_snippet_video():
    model = tiny().eval()
    out = model(torch.randn(1, 1, 2 * D))
    assert out.cas.shape == (1, 1, C + 1)


def test_wrong_feature_width_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(B, T, 64\)"):
        tiny()(torch.randn(2, 5, 2 * D + 1))


def test_dropout_only_in_train_mode():
    torch.manual_seed(0)
    model = tiny()
    x = torch.randn(2, 11, 2 * D)
    model.eval()
    a, b = model(x), model(x)
    assert torch.equal(a.cas, b.cas)
    model.train()
    c, d = model(x), model(x)
    assert not torch.equal(c.cas, d.cas)
    assert not torch.equal(c.v_atn, d.v_atn)


def test_attention_logit_dropout_switch():
    model = tiny(attention_logit_dropout=False)
    assert isinstance(model.vAttn.attention[6], nn.Identity)
    assert isinstance(tiny().vAttn.attention[6], nn.Dropout)
    # Without the logit dropout, a model whose attention-unit dropout is 0 gives train ==
    # eval attention even in train mode.
    model = tiny(attention_logit_dropout=False, attention_dropout=0.0, ccm_dropout=0.0).train()
    x = torch.randn(2, 7, 2 * D)
    assert torch.equal(model(x).v_atn, model(x).v_atn)


def test_dropout_probabilities_follow_config():
    model = tiny(dropout=0.3, classifier_dropout_2=0.6, ccm_dropout=0.2, attention_dropout=0.1)
    assert model.fusion[2].p == 0.3
    assert model.classifier[0].p == 0.3
    assert model.classifier[3].p == 0.6
    assert model.vAttn.bit_wise_attn[2].p == 0.2
    assert model.vAttn.channel_conv[2].p == 0.2
    assert model.vAttn.attention[2].p == 0.1
    assert model.vAttn.attention[6].p == 0.1


def test_rgb_and_flow_units_are_not_shared():
    model = tiny()
    assert model.vAttn.attention[0].weight.data_ptr() != model.fAttn.attention[0].weight.data_ptr()
    assert not torch.equal(model.vAttn.attention[0].weight, model.fAttn.attention[0].weight)


def test_ccm_matches_spec_formula():
    """X~ = sigmoid(G * L) * M with G from the temporal mean of M, L from U (eval mode)."""
    torch.manual_seed(1)
    model = tiny().eval()
    x = torch.randn(2, 9, 2 * D)
    feat = x.transpose(1, 2)
    rgb, flow = feat[:, :D], feat[:, D:]
    unit = model.vAttn
    g = torch.nn.functional.leaky_relu(unit.channel_conv[0](rgb.mean(-1, keepdim=True)), 0.2)
    loc = torch.nn.functional.leaky_relu(unit.bit_wise_attn[0](flow), 0.2)
    expected = torch.sigmoid(g * loc) * rgb
    atn, recal = unit(rgb, flow)
    torch.testing.assert_close(recal, expected)
    torch.testing.assert_close(atn, unit.attention(expected))


def test_global_descriptor_uses_only_centre_tap():
    torch.manual_seed(2)
    model = tiny().eval()
    x = torch.randn(1, 6, 2 * D)
    before = model(x).cas
    with torch.no_grad():
        model.vAttn.channel_conv[0].weight[:, :, 0] += 1.0
        model.vAttn.channel_conv[0].weight[:, :, 2] -= 3.0
    torch.testing.assert_close(model(x).cas, before)


# --- variants ---------------------------------------------------------------------------------


def test_activitynet_smoothing_kernel():
    assert ModelConfig(variant="activitynet12").smoothing_kernel == 13
    assert ModelConfig(variant="activitynet12", max_seqlen=320, pool_t=5).smoothing_kernel == 65
    # the original's kernel follows --max-seqlen: 80 snippets give 17, not 13
    assert ModelConfig(variant="activitynet12", max_seqlen=80).smoothing_kernel == 17
    assert ModelConfig().smoothing_kernel is None


def test_activitynet_variant_smooths_cas_and_attentions():
    torch.manual_seed(3)
    thumos = tiny().eval()
    anet = tiny(variant="activitynet12").eval()
    anet.load_state_dict(thumos.state_dict())
    x = torch.randn(2, 30, 2 * D)
    a, b = thumos(x), anet(x)
    pool = nn.AvgPool1d(13, 1, 6, count_include_pad=True)

    def smooth(t):
        return pool(t.transpose(1, 2)).transpose(1, 2)

    torch.testing.assert_close(b.cas, smooth(a.cas))
    torch.testing.assert_close(b.v_atn, smooth(a.v_atn))
    torch.testing.assert_close(b.f_atn, smooth(a.f_atn))
    # fused attention is computed from the UNsmoothed a_r, a_f, then smoothed
    torch.testing.assert_close(b.attn, smooth((a.v_atn + a.f_atn) / 2))
    torch.testing.assert_close(b.feat, a.feat)


@pytest.mark.parametrize("fusion", ["ccm", "concat", "add", "se"])
@pytest.mark.parametrize("main", ["global", "local"])
@pytest.mark.parametrize("aux", ["global", "local"])
def test_ablation_switches_build_and_train(fusion, main, aux):
    torch.manual_seed(4)
    model = tiny(fusion=fusion, main_descriptor=main, aux_descriptor=aux).train()
    out = model(torch.randn(2, 8, 2 * D))
    assert out.cas.shape == (2, 8, C + 1)
    (out.cas.sum() + out.attn.sum() + out.feat.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_ablation_parameter_counts():
    d, h = D, 16
    attention = d * h * 3 + h + h * h * 3 + h + h + 1
    counts = {
        "ccm": 2 * (d * d * 3 + d) + attention,
        "se": d * 64 + 64 + 64 * d + d + attention,
        "add": attention,
        "concat": attention + (2 * d) * h * 3 - d * h * 3,
    }
    for fusion, per_unit in counts.items():
        model = tiny(fusion=fusion)
        assert count_parameters(model.vAttn) == per_unit, fusion


def test_descriptor_switch_changes_output():
    torch.manual_seed(5)
    ref = tiny().eval()
    swapped = tiny(main_descriptor="local", aux_descriptor="global").eval()
    swapped.load_state_dict(ref.state_dict())
    x = torch.randn(1, 12, 2 * D)
    assert not torch.allclose(ref(x).cas, swapped(x).cas)


def test_se_baseline_ignores_auxiliary_modality():
    torch.manual_seed(6)
    model = tiny(fusion="se").eval()
    rgb = torch.randn(1, D, 10)
    a1, f1 = model.vAttn(rgb, torch.randn(1, D, 10))
    a2, f2 = model.vAttn(rgb, torch.randn(1, D, 10))
    assert torch.equal(a1, a2) and torch.equal(f1, f2)


def test_config_validation_and_from_dict():
    assert ModelConfig.from_dict({"n_classes": 100}).n_classes == 100
    assert ModelConfig.from_dict(None) == ModelConfig()
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict({"n_clases": 3})
    with pytest.raises(ValueError, match="fusion"):
        ModelConfig(fusion="ssma")
    with pytest.raises(ValueError, match="variant"):
        ModelConfig(variant="thumos")
    with pytest.raises(ValueError, match="dropout"):
        ModelConfig(dropout=1.0)


# --- initialisation ---------------------------------------------------------------------------


def test_init_kaiming_uniform_and_zero_bias():
    torch.manual_seed(7)
    model = tiny()
    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            fan_in = m.in_channels * m.kernel_size[0]
            bound = math.sqrt(6.0 / fan_in)
            assert m.weight.abs().max() <= bound
            assert m.weight.abs().max() > 0.8 * bound  # not PyTorch's default (bound / sqrt(6))
            assert torch.count_nonzero(m.bias) == 0


def _reference_order_weights(cfg: ModelConfig) -> list[torch.Tensor]:
    """Convs created in the reference order, default init, then kaiming re-init in order."""
    d, d2, h = cfg.feature_dim, 2 * cfg.feature_dim, cfg.attention_hidden
    unit = [(d, d, 3), (d, d, 3), (d, h, 3), (h, h, 3), (h, 1, 1)]
    shapes = unit + unit + [(d2, d2, 3), (d2, d2, 1), (d2, d2, 3), (d2, cfg.n_classes + 1, 1)]
    convs = [nn.Conv1d(i, o, k, padding=k // 2) for i, o, k in shapes]
    for conv in convs:
        nn.init.kaiming_uniform_(conv.weight)
    return [c.weight for c in convs]


def test_seed_exact_init_in_reference_creation_order():
    cfg = ModelConfig(**TINY, include_feat_encoder=True)
    torch.manual_seed(3552)
    expected = _reference_order_weights(cfg)
    torch.manual_seed(3552)
    model = build_model(cfg)
    got = [m.weight for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert torch.equal(g, e)


def test_without_feat_encoder_still_seed_exact():
    torch.manual_seed(11)
    full = build_model({**TINY, "include_feat_encoder": True})
    after_full = torch.rand(3)
    torch.manual_seed(11)
    lean = build_model(TINY)
    assert "feat_encoder.0.weight" not in lean.state_dict()
    for name, tensor in lean.state_dict().items():
        assert torch.equal(tensor, full.state_dict()[name]), name
    assert torch.equal(torch.rand(3), after_full)  # same RNG stream afterwards too
    torch.manual_seed(11)
    fast = build_model({**TINY, "seed_compatible_init": False})
    assert not torch.equal(fast.fusion[0].weight, full.fusion[0].weight)


def test_load_reference_state_dict_drops_feat_encoder():
    full = build_model({**TINY, "include_feat_encoder": True})
    lean = build_model(TINY)
    state = {f"module.{k}": v for k, v in full.state_dict().items()}
    load_reference_state_dict(lean, state)
    for name, tensor in lean.state_dict().items():
        assert torch.equal(tensor, full.state_dict()[name])
    with pytest.raises(RuntimeError):
        lean.load_state_dict(full.state_dict())


# --- inference --------------------------------------------------------------------------------


def _videos(lengths, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        f"video_{i:03d}": rng.standard_normal((t, 2 * D)).astype(np.float32)
        for i, t in enumerate(lengths)
    }


def test_inference_outputs_match_direct_forward():
    torch.manual_seed(8)
    model = tiny()
    feats = _videos([5, 12, 12, 1, 30])
    out = run_inference(model, feats, "cpu", batching="none")
    assert list(out) == list(feats)
    assert model.training  # mode restored
    model.eval()
    for vid, feat in feats.items():
        o = out[vid]
        assert set(o) == {"cas", "attention", "v_atn", "f_atn"}
        assert o["cas"].shape == (len(feat), C + 1) and o["cas"].dtype == np.float32
        for key in ("attention", "v_atn", "f_atn"):
            assert o[key].shape == (len(feat),) and o[key].dtype == np.float32
        with torch.no_grad():
            direct = model(torch.from_numpy(feat)[None])
        np.testing.assert_array_equal(o["cas"], direct.cas[0].numpy())
        np.testing.assert_array_equal(o["attention"], direct.attn[0, :, 0].numpy())


def test_inference_equal_length_batching_never_changes_results():
    torch.manual_seed(9)
    model = tiny()
    feats = _videos([20, 20, 20, 7, 7, 33, 20], seed=1)
    batched = run_inference(model, feats, "cpu", batching="equal_length")
    single = run_inference(model, feats, "cpu", batching="none")
    for vid in feats:
        for key in single[vid]:
            np.testing.assert_array_equal(batched[vid][key], single[vid][key])


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"fusion": "se"},
        {"fusion": "concat"},
        {"fusion": "add"},
        {"main_descriptor": "local", "aux_descriptor": "global"},
        {"variant": "activitynet12", "max_seqlen": 30},  # smoothing kernel 7
    ],
    ids=["ccm", "se", "concat", "add", "local-global", "activitynet12"],
)
def test_padded_batches_equal_one_video_passes(overrides):
    """Padding never leaks into a video's outputs: not through the temporal means, a conv(3),
    or the ActivityNet smoothing (lengths 1..40, batches padded by up to 39 snippets)."""
    torch.manual_seed(12)
    model = tiny(**overrides)
    feats = _videos([1, 2, 3, 9, 10, 11, 17, 25, 33, 40, 40], seed=2)
    single = run_inference(model, feats, "cpu", batching="none")
    # max_padding 1: any mix of lengths in one pass
    lengths = {v: len(f) for v, f in feats.items()}
    assert len(padded_batches(lengths, 10**6, max_padding=1.0)) == 1
    model.eval()
    with torch.inference_mode():
        x = np.zeros((len(feats), 40, 2 * D), np.float32)
        x[:] = 7.0  # padding content must not matter either
        for row, f in enumerate(feats.values()):
            x[row, : len(f)] = f
        out = model(torch.from_numpy(x), torch.tensor(list(lengths.values())))
    for row, (vid, f) in enumerate(feats.items()):
        t = len(f)
        np.testing.assert_allclose(out.cas[row, :t].numpy(), single[vid]["cas"], atol=2e-5)
        for name, key in (("attn", "attention"), ("v_atn", "v_atn"), ("f_atn", "f_atn")):
            got = getattr(out, name)[row, :t, 0].numpy()
            np.testing.assert_allclose(got, single[vid][key], atol=2e-5)
    padded = run_inference(model, feats, "cpu", batching="padded", max_batch_snippets=64)
    for vid in feats:
        for key in single[vid]:
            np.testing.assert_allclose(padded[vid][key], single[vid][key], atol=2e-5)


def test_padded_batches_respect_the_limits():
    lengths = {"a": 100, "b": 95, "c": 30, "d": 29, "e": 28, "f": 500, "g": 7}
    batches = padded_batches(lengths, max_batch_snippets=256, max_padding=0.1)
    assert sorted(v for chunk, _ in batches for v in chunk) == sorted(lengths)
    for chunk, padded_to in batches:
        assert padded_to % 8 == 0 and padded_to >= max(lengths[v] for v in chunk)
        if len(chunk) > 1:
            assert padded_to * len(chunk) <= 256
            longest = max(lengths[v] for v in chunk)
            assert 1 - sum(lengths[v] for v in chunk) / (longest * len(chunk)) <= 0.1
    assert (["f"], 504) in batches  # longer than the limit: alone
    assert (["e", "d", "c"], 32) in batches
    with pytest.raises(ValueError, match="batching"):
        run_inference(tiny(), _videos([3]), "cpu", batching="by_length")
    x = torch.zeros(2, 6, 2 * D)
    for bad in (torch.tensor([6, 0]), torch.tensor([7, 3]), torch.tensor([6])):
        with pytest.raises(ValueError, match="lengths"):
            tiny()(x, bad)


def test_inference_rejects_wrong_width():
    with pytest.raises(ValueError, match="video_000"):
        run_inference(tiny(), {"video_000": np.zeros((4, 2 * D + 2), np.float32)}, "cpu")


def test_inference_bf16_autocast_runs():
    torch.manual_seed(10)
    out = run_inference(tiny(), _videos([9]), "cpu", autocast_bf16=True)
    assert out["video_000"]["cas"].dtype == np.float32
