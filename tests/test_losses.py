"""CO2-Net losses (spec §3): golden parity with the reference criterion, and each term alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from golden import golden_cases

from co2net_pipeline.method.losses import (
    TERMS,
    LossConfig,
    co2net_loss,
    co_activity_loss,
    mil_loss,
    mutual_loss,
    norm_loss,
    opposite_loss,
    suppressed_cas,
    topk_k,
)
from co2net_pipeline.method.model import ModelOutputs

GRAD_KEYS = ("feat", "cas", "attn", "v_atn", "f_atn")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _load_case(case):
    inputs = np.load(case / "inputs.npz")
    tensors = {k: torch.tensor(inputs[k], requires_grad=k in GRAD_KEYS) for k in inputs.files}
    meta = json.loads((case / "meta.json").read_text())
    cfg = LossConfig.from_dict({"topk_divisor": meta["topk_divisor"], "weights": meta["weights"]})
    outputs = ModelOutputs(*(tensors[k] for k in GRAD_KEYS))
    return tensors, outputs, cfg


@pytest.mark.parametrize("case", golden_cases("losses"))
def test_golden_losses_values(case):
    tensors, outputs, cfg = _load_case(case)
    expected = json.loads((case / "expected.json").read_text())
    total, terms = co2net_loss(outputs, tensors["labels"], cfg)
    assert set(terms) == set(TERMS)
    for name in TERMS:
        assert terms[name].item() == pytest.approx(expected[name], rel=1e-4, abs=1e-6), name
    assert total.item() == pytest.approx(expected["total"], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("case", golden_cases("losses"))
def test_golden_losses_gradients(case):
    tensors, outputs, cfg = _load_case(case)
    expected = np.load(case / "expected_grads.npz")
    total, _ = co2net_loss(outputs, tensors["labels"], cfg)
    total.backward()
    for key in GRAD_KEYS:
        got = tensors[key].grad.numpy()
        exp = expected[key]
        assert got.shape == exp.shape
        excess = np.abs(got - exp) - (1e-5 + 1e-3 * np.abs(exp))
        assert excess.max() <= 0, f"{key}: worst excess {excess.max():.3g}"


# --- helpers ----------------------------------------------------------------------------------


def _random_batch(b=10, t=20, c=4, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    feat = torch.randn(b, t, d, generator=g)
    cas = 2 * torch.randn(b, t, c + 1, generator=g)
    attn, v_atn, f_atn = (torch.sigmoid(torch.randn(b, t, 1, generator=g)) for _ in range(3))
    labels = torch.zeros(b, c)
    labels[torch.arange(b), torch.arange(b) % c] = 1
    labels[0::2][:3] = labels[1::2][:3]  # the three pairs share their class
    labels[2, 0] = labels[3, 0] = 1  # pair (2,3) shares two classes
    return feat, cas, attn, v_atn, f_atn, labels


# --- each term ----------------------------------------------------------------------------------


def test_topk_k_floored_at_one():
    assert topk_k(500, 7) == 71
    assert topk_k(320, 7) == 45
    assert topk_k(60, 5) == 12
    assert topk_k(6, 7) == 1
    assert topk_k(1, 7) == 1


def test_suppressed_cas_min_shift_and_plain():
    cas = torch.tensor([[[1.0, -2.0, 3.0]]])
    attn = torch.tensor([[[0.5]]])
    # m = -2: 0.5 * (S + 2) - 2
    torch.testing.assert_close(suppressed_cas(cas, attn), torch.tensor([[[-0.5, -2.0, 0.5]]]))
    torch.testing.assert_close(suppressed_cas(cas, attn, min_shift=False), 0.5 * cas)
    # attention 1 leaves the CAS unchanged, attention 0 flattens it to the snippet's minimum
    torch.testing.assert_close(suppressed_cas(cas, torch.ones(1, 1, 1)), cas)
    torch.testing.assert_close(
        suppressed_cas(cas, torch.zeros(1, 1, 1)), torch.full_like(cas, -2.0)
    )


def test_mil_loss_by_hand():
    cas = torch.tensor([[[0.0, 1.0, 2.0], [4.0, 3.0, 0.0], [2.0, -1.0, 1.0]]])  # T=3, C+1=3
    labels = torch.tensor([[1.0, 0.0]])
    # k = max(1, 3 // 2) = 1: pooled = column maxima
    pooled = torch.tensor([4.0, 3.0, 2.0])
    logp = F.log_softmax(pooled, dim=0)
    with_bg = -(logp[0] + logp[2]) / (2 + 1e-4)
    without_bg = -logp[0] / (1 + 1e-4)
    got_bg = mil_loss(cas, labels, background=True, topk_divisor=2)
    got = mil_loss(cas, labels, background=False, topk_divisor=2)
    assert got_bg.item() == pytest.approx(with_bg.item(), rel=1e-6)
    assert got.item() == pytest.approx(without_bg.item(), rel=1e-6)
    # k = 3 // 1 = 3: the temporal mean
    pooled = cas.mean(dim=1)[0]
    expected = -F.log_softmax(pooled, dim=0)[0] / (1 + 1e-4)
    assert mil_loss(cas, labels, background=False, topk_divisor=1).item() == pytest.approx(
        expected.item(), rel=1e-6
    )


def _co_activity_loop(feat, cas, labels, n_pairs=3, margin=0.5):
    """Straightforward per-pair transcription of spec §3.3."""
    total, count = 0.0, 0.0
    n = cas.shape[1]
    c = labels.shape[1]
    for i in range(0, 2 * n_pairs, 2):
        a1, a2 = F.softmax(cas[i], dim=0), F.softmax(cas[i + 1], dim=0)
        h1, h2 = feat[i].T @ a1, feat[i + 1].T @ a2
        l1, l2 = feat[i].T @ (1 - a1) / max(n - 1, 1), feat[i + 1].T @ (1 - a2) / max(n - 1, 1)
        d1 = 1 - F.cosine_similarity(h1, h2, dim=0, eps=0)
        d2 = 1 - F.cosine_similarity(h1, l2, dim=0, eps=0)
        d3 = 1 - F.cosine_similarity(h2, l1, dim=0, eps=0)
        shared = labels[i] * labels[i + 1]
        hinge = 0.5 * torch.clamp(d1 - d2 + margin, min=0) + 0.5 * torch.clamp(
            d1 - d3 + margin, min=0
        )
        total = total + (hinge[:c] * shared).sum()
        count = count + shared.sum()
    return total / count


def test_co_activity_equals_per_pair_loop():
    feat, cas, _, _, _, labels = _random_batch()
    got = co_activity_loss(feat, cas, labels)
    expected = _co_activity_loop(feat, cas, labels)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_co_activity_uses_only_first_pairs():
    feat, cas, _, _, _, labels = _random_batch()
    base = co_activity_loss(feat, cas, labels)
    feat2, cas2 = feat.clone(), cas.clone()
    feat2[6:] = torch.randn_like(feat2[6:])
    cas2[6:] = torch.randn_like(cas2[6:])
    assert co_activity_loss(feat2, cas2, labels).item() == base.item()


def test_co_activity_without_shared_class_is_zero():
    feat, cas, _, _, _, _ = _random_batch()
    labels = torch.eye(10, 10)[:, :4]  # no pair shares a class
    feat.requires_grad_(True)
    loss = co_activity_loss(feat, cas, labels)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(feat.grad).all()


def test_co_activity_small_batch_uses_available_pairs():
    feat, cas, _, _, _, labels = _random_batch(b=4)
    got = co_activity_loss(feat, cas, labels, n_pairs=3)
    assert got.item() == pytest.approx(_co_activity_loop(feat, cas, labels, 2).item(), rel=1e-5)


def test_mutual_mse_value_and_half_gradient():
    _, _, _, v, f, _ = _random_batch()
    v = v.clone().requires_grad_(True)
    f = f.clone().requires_grad_(True)
    loss = mutual_loss(v, f)
    assert loss.item() == pytest.approx(((v - f) ** 2).mean().item(), rel=1e-6)
    loss.backward()
    torch.testing.assert_close(v.grad, (v - f).detach() / v.numel())
    torch.testing.assert_close(f.grad, (f - v).detach() / v.numel())
    v.grad, f.grad = None, None
    mutual_loss(v, f, stop_grad=False).backward()
    torch.testing.assert_close(v.grad, 2 * (v - f).detach() / v.numel())


@pytest.mark.parametrize("metric", ["mse", "mae", "kl", "js"])
def test_mutual_metrics(metric):
    _, _, _, v, f, _ = _random_batch()
    v = v.clone().requires_grad_(True)
    loss = mutual_loss(v, f, metric=metric)
    assert loss.item() > 0
    loss.backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0
    assert mutual_loss(f, f, metric=metric).item() == pytest.approx(0.0, abs=1e-6)


def test_mutual_unknown_metric():
    _, _, _, v, f, _ = _random_batch()
    with pytest.raises(ValueError, match="metric"):
        mutual_loss(v, f, metric="cos")
    with pytest.raises(ValueError, match="mutual_metric"):
        LossConfig(mutual_metric="cos")


def test_norm_loss():
    _, _, a, v, f, _ = _random_batch()
    expected = (a.mean() + v.mean() + f.mean()) / 3
    assert norm_loss(a, v, f).item() == pytest.approx(expected.item(), rel=1e-6)
    assert norm_loss(a, v, f, all_attentions=False).item() == pytest.approx(a.mean().item())


def test_opposite_loss_value_and_background_gradient():
    _, cas, a, v, f, _ = _random_batch()
    cas = cas.clone().requires_grad_(True)
    p_bg = F.softmax(cas, dim=-1)[..., -1:]
    expected = sum((1 - x - p_bg).abs().mean() for x in (a, v, f)) / 3
    loss = opposite_loss(cas, a, v, f)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert cas.grad.abs().sum() > 0  # not detached: trains the classifier
    cas.grad = None
    opposite_loss(cas, a.requires_grad_(True), v, f, detach_background=True).backward()
    assert cas.grad is None


# --- total and config ----------------------------------------------------------------------------


def test_total_is_weighted_sum_and_zero_weight_switches_off():
    feat, cas, a, v, f, labels = _random_batch()
    out = ModelOutputs(feat, cas, a, v, f)
    cfg = LossConfig()
    total, terms = co2net_loss(out, labels, cfg)
    weighted = sum(cfg.weights[k] * terms[k] for k in terms)
    assert total.item() == pytest.approx(weighted.item(), rel=1e-6)
    cfg_off = LossConfig(co_activity=0.0, mutual=0.0)
    total_off, terms_off = co2net_loss(out, labels, cfg_off)
    assert set(terms_off) == set(TERMS) - {"co_activity", "mutual"}
    assert total_off.item() == pytest.approx(
        (total - terms["co_activity"] - terms["mutual"]).item(), rel=1e-6
    )


def test_paper_variants_change_the_loss():
    feat, cas, a, v, f, labels = _random_batch()
    out = ModelOutputs(feat, cas, a, v, f)
    ref, _ = co2net_loss(out, labels)
    for change in (
        {"suppress_min_shift": False},
        {"all_attentions": False},
        {"target_eps": 0.0},
        {"mutual_metric": "js"},
    ):
        other, _ = co2net_loss(out, labels, LossConfig(**change))
        assert other.item() != ref.item(), change


def test_loss_config_from_dict():
    cfg = LossConfig.from_dict({"topk_divisor": 5, "weights": {"norm": 0.5}, "mutual_metric": "kl"})
    assert (cfg.topk_divisor, cfg.norm, cfg.opposite, cfg.mutual_metric) == (5, 0.5, 0.8, "kl")
    with pytest.raises(ValueError, match="unknown loss terms"):
        LossConfig.from_dict({"weights": {"sparsity": 1.0}})
    with pytest.raises(ValueError, match="unknown keys"):
        LossConfig.from_dict({"topk": 7})
    with pytest.raises(ValueError, match="every loss weight is 0"):
        feat, cas, a, v, f, labels = _random_batch()
        co2net_loss(ModelOutputs(feat, cas, a, v, f), labels, LossConfig(**dict.fromkeys(TERMS, 0)))
