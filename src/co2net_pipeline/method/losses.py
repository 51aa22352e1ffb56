"""CO2-Net training losses, one function per term (spec §3), exactly as the reference codes them.

Shapes, in the spec's words: `cas: (B, T, C+1)` logits (background = last column),
`attn`, `v_atn`, `f_atn: (B, T, 1)` attention, `feat: (B, T, 2D)` fused features,
`labels: (B, C)` multi-hot video labels. Every term returns a scalar tensor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F

from co2net_pipeline.common.config import dataclass_from_dict
from co2net_pipeline.method.model.co2net import ModelOutputs

TERMS = ("mil_raw", "mil_supp", "co_activity", "mutual", "norm", "opposite")
MutualMetric = Literal["mse", "mae", "kl", "js"]
MUTUAL_METRICS: tuple[str, ...] = get_args(MutualMetric)


@dataclass
class LossConfig:
    """Loss weights and options; defaults are the reference THUMOS14 criterion (spec §3.7).
    The single list of the `loss` parameters (`params.schema` derives the checked group,
    where the six weights sit under `loss.weights` and n_similar is `training.n_similar`).

    A term whose weight is 0 is switched off: it is not computed and not reported.

    Attributes:
        topk_divisor: r in k = max(1, T // r) for the top-k MIL pooling (THUMOS 7, ANet 5).
        mil_raw, mil_supp, co_activity, mutual, norm, opposite: weights of the six terms
            (reference 1, 1, alpha3 = 1, alpha4 = 1, alpha1 = 0.8, alpha2 = 0.8).
        mutual_metric: "mse" (reference), "mae", "kl" or "js" (Bernoulli divergences per
            snippet), see `mutual_loss`.
        mutual_stop_grad: reference: each half of the mutual loss detaches its target, so
            either attention learns from the other; False back-propagates into both sides.
        n_similar: number of class-sharing pairs at the front of the batch (co-activity).
        co_activity_margin: hinge margin of the co-activity loss (0.5).
        suppress_min_shift: reference quirk: the suppressed CAS used in training is
            a*(S - min_c S) + min_c S; the paper (Eq. 9) writes plain a*S (False).
        target_eps: the MIL target is [y, b] / (sum + target_eps); reference 1e-4, so the
            target sums to slightly below 1.
        all_attentions: reference quirk: the norm and opposite losses average the fused, RGB
            and Flow attention terms; the paper defines them on the fused attention only
            (False).
        detach_background: reference: the background probability in the opposite loss is NOT
            detached (it also trains the classifier); True detaches it.
    """

    topk_divisor: int = 7
    mil_raw: float = 1.0
    mil_supp: float = 1.0
    co_activity: float = 1.0
    mutual: float = 1.0
    norm: float = 0.8
    opposite: float = 0.8
    mutual_metric: MutualMetric = "mse"
    mutual_stop_grad: bool = True
    n_similar: int = 3
    co_activity_margin: float = 0.5
    suppress_min_shift: bool = True
    target_eps: float = 1e-4
    all_attentions: bool = True
    detach_background: bool = False

    def __post_init__(self) -> None:
        if self.mutual_metric not in MUTUAL_METRICS:
            raise ValueError(
                f"LossConfig.mutual_metric={self.mutual_metric!r}: expected one of {MUTUAL_METRICS}"
            )
        if int(self.topk_divisor) < 1:
            raise ValueError(f"LossConfig.topk_divisor must be >= 1, got {self.topk_divisor}")
        for term in TERMS:
            if float(getattr(self, term)) < 0:
                raise ValueError(
                    f"LossConfig.{term} weight must be >= 0, got {getattr(self, term)}"
                )

    @property
    def weights(self) -> dict[str, float]:
        return {term: float(getattr(self, term)) for term in TERMS}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> LossConfig:
        """Build from parameters; a nested `weights: {term: w}` mapping is accepted too."""
        values = dict(values or {})
        weights = values.pop("weights", None) or {}
        unknown_terms = sorted(set(weights) - set(TERMS))
        if unknown_terms:
            raise ValueError(f"LossConfig: unknown loss terms {unknown_terms}; known {TERMS}")
        values.update(weights)
        return dataclass_from_dict(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def topk_k(n_snippets: int, topk_divisor: int) -> int:
    """k = max(1, T // r): number of snippets averaged by the top-k MIL pooling."""
    return max(1, int(n_snippets) // int(topk_divisor))


def suppressed_cas(cas: torch.Tensor, attn: torch.Tensor, min_shift: bool = True) -> torch.Tensor:
    """Attention-suppressed CAS (spec §3.1): (B, T, C+1).

    min_shift=True (reference training): a*(S - m) + m with m = min over the C+1 classes of
    each snippet (not detached), so attention pulls a snippet's logits towards its smallest.
    min_shift=False: plain a*S (paper Eq. 9, and what inference uses).
    """
    if not min_shift:
        return attn * cas
    m = cas.min(dim=-1, keepdim=True).values
    return attn * (cas - m) + m


def mil_loss(
    cas: torch.Tensor,
    labels: torch.Tensor,
    *,
    background: bool,
    topk_divisor: int = 7,
    target_eps: float = 1e-4,
) -> torch.Tensor:
    """Top-k MIL loss (spec §3.2), mean over the batch.

    cas: (B, T, C+1) logits; labels: (B, C) multi-hot. Per video and class the k largest
    logits over time are averaged (k = max(1, T // topk_divisor)); the target [y, b] is
    normalised by (its sum + target_eps), b = 1 if `background` else 0; the loss is the
    cross-entropy with log_softmax of the pooled logits.
    """
    k = topk_k(cas.shape[-2], topk_divisor)
    pooled = cas.topk(k, dim=-2).values.mean(dim=-2)  # (B, C+1)
    bg = torch.full_like(labels[:, :1], 1.0 if background else 0.0)
    target = torch.cat((labels, bg), dim=-1)
    target = target / (target.sum(dim=-1, keepdim=True) + target_eps)
    return -(target * F.log_softmax(pooled, dim=-1)).sum(dim=-1).mean()


def co_activity_loss(
    feat: torch.Tensor,
    cas: torch.Tensor,
    labels: torch.Tensor,
    *,
    n_pairs: int = 3,
    margin: float = 0.5,
) -> torch.Tensor:
    """Co-activity similarity loss (W-TALC CASL, spec §3.3) over the pairs (0,1), (2,3), ...

    feat: (B, T, 2D) fused features; cas: (B, T, C+1) (the suppressed CAS in CO2-Net);
    labels: (B, C). Only the first `n_pairs` pairs are used (the sampler puts the
    class-sharing pairs there); the background column never counts. The pair terms are
    summed and divided once by the total number of shared (pair, class) entries. Cosines
    have no epsilon (as the reference). A batch whose pairs share no class gives 0 (the
    reference would give 0/0 = NaN; its sampler never produces such a batch).
    """
    n_pairs = min(int(n_pairs), feat.shape[0] // 2)
    if n_pairs == 0:
        return feat.sum() * 0.0
    n = cas.shape[1]
    first, second = slice(0, 2 * n_pairs, 2), slice(1, 2 * n_pairs, 2)
    atn = F.softmax(cas[: 2 * n_pairs], dim=1)  # softmax over time, (2P, T, C+1)
    x = feat[: 2 * n_pairs].transpose(1, 2)  # (2P, 2D, T)
    high = torch.bmm(x, atn)  # (2P, 2D, C+1)
    # max(T-1, 1) cancels inside the cosine; kept for parity with the reference.
    low = torch.bmm(x, (1 - atn) / max(n - 1, 1))
    h1, h2, l1, l2 = high[first], high[second], low[first], low[second]
    h1n, h2n = h1.norm(dim=1), h2.norm(dim=1)
    d1 = 1 - (h1 * h2).sum(dim=1) / (h1n * h2n)
    d2 = 1 - (h1 * l2).sum(dim=1) / (h1n * l2.norm(dim=1))
    d3 = 1 - (h2 * l1).sum(dim=1) / (h2n * l1.norm(dim=1))  # (P, C+1)
    shared = labels[first] * labels[second]  # (P, C): background column excluded
    n_classes = shared.shape[1]
    hinge = 0.5 * F.relu(d1 - d2 + margin) + 0.5 * F.relu(d1 - d3 + margin)
    total = (hinge[:, :n_classes] * shared).sum()
    count = shared.sum()
    return torch.where(count > 0, total / count.clamp_min(1.0), total * 0.0)


def _bernoulli_kl(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    p = p.clamp(eps, 1 - eps)
    q = q.clamp(eps, 1 - eps)
    return p * (p.log() - q.log()) + (1 - p) * ((1 - p).log() - (1 - q).log())


def _attention_distance(x: torch.Tensor, target: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "mse":
        return (x - target).pow(2).mean()
    if metric == "mae":
        return (x - target).abs().mean()
    if metric == "kl":
        # KL(target || x): x is pulled towards the target's Bernoulli distribution.
        return _bernoulli_kl(target, x).mean()
    mid = (x + target) / 2  # "js"
    return (0.5 * _bernoulli_kl(x, mid) + 0.5 * _bernoulli_kl(target, mid)).mean()


def mutual_loss(
    v_atn: torch.Tensor, f_atn: torch.Tensor, *, metric: str = "mse", stop_grad: bool = True
) -> torch.Tensor:
    """Mutual learning of the RGB and Flow attentions (spec §3.4).

    0.5*D(v_atn, sg(f_atn)) + 0.5*D(f_atn, sg(v_atn)), means over B*T; D is MSE (reference),
    MAE, Bernoulli KL(target || x) or Bernoulli JS per snippet. With stop_grad (reference) the
    gradient w.r.t. v_atn is half of that of the undetached distance. The paper weights the
    two directions with a hyper-parameter; the reference fixes 0.5/0.5.
    """
    if metric not in MUTUAL_METRICS:
        raise ValueError(f"mutual_loss metric={metric!r}: expected one of {MUTUAL_METRICS}")
    f_target = f_atn.detach() if stop_grad else f_atn
    v_target = v_atn.detach() if stop_grad else v_atn
    return 0.5 * _attention_distance(v_atn, f_target, metric) + 0.5 * _attention_distance(
        f_atn, v_target, metric
    )


def norm_loss(
    attn: torch.Tensor, v_atn: torch.Tensor, f_atn: torch.Tensor, *, all_attentions: bool = True
) -> torch.Tensor:
    """Sparsity loss (spec §3.5): (mean(a) + mean(a_r) + mean(a_f)) / 3 (reference), or
    mean(a) alone when all_attentions=False (the paper's definition)."""
    if not all_attentions:
        return attn.mean()
    return (attn.mean() + v_atn.mean() + f_atn.mean()) / 3


def opposite_loss(
    cas: torch.Tensor,
    attn: torch.Tensor,
    v_atn: torch.Tensor,
    f_atn: torch.Tensor,
    *,
    all_attentions: bool = True,
    detach_background: bool = False,
) -> torch.Tensor:
    """Opposite ("guide") loss (spec §3.6): mean|1 - a - p_bg| averaged over a, a_r, a_f
    (reference; the paper uses the fused a only), p_bg = softmax over classes of the CAS,
    background column: (B, T, 1), not detached by default (reference)."""
    p_bg = F.softmax(cas, dim=-1)[..., -1:]
    if detach_background:
        p_bg = p_bg.detach()
    if not all_attentions:
        return (1 - attn - p_bg).abs().mean()
    return (
        (1 - attn - p_bg).abs().mean()
        + (1 - v_atn - p_bg).abs().mean()
        + (1 - f_atn - p_bg).abs().mean()
    ) / 3


def co2net_loss(
    outputs: ModelOutputs, labels: torch.Tensor, cfg: LossConfig | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total CO2-Net loss (spec §3.7) and its unweighted terms.

    outputs: ModelOutputs (feat (B,T,2D), cas (B,T,C+1), attn/v_atn/f_atn (B,T,1));
    labels: (B, C) multi-hot. Returns (total, {term: unweighted value}) for every term whose
    weight is non-zero; total = sum of weight * term.
    """
    cfg = cfg or LossConfig()
    labels = labels.to(outputs.cas.dtype)
    w = cfg.weights
    terms: dict[str, torch.Tensor] = {}
    needs_supp = w["mil_supp"] > 0 or w["co_activity"] > 0
    cas_supp = (
        suppressed_cas(outputs.cas, outputs.attn, cfg.suppress_min_shift) if needs_supp else None
    )
    if w["mil_raw"] > 0:
        terms["mil_raw"] = mil_loss(
            outputs.cas,
            labels,
            background=True,
            topk_divisor=cfg.topk_divisor,
            target_eps=cfg.target_eps,
        )
    if w["mil_supp"] > 0:
        terms["mil_supp"] = mil_loss(
            cas_supp,
            labels,
            background=False,
            topk_divisor=cfg.topk_divisor,
            target_eps=cfg.target_eps,
        )
    if w["co_activity"] > 0:
        terms["co_activity"] = co_activity_loss(
            outputs.feat, cas_supp, labels, n_pairs=cfg.n_similar, margin=cfg.co_activity_margin
        )
    if w["mutual"] > 0:
        terms["mutual"] = mutual_loss(
            outputs.v_atn, outputs.f_atn, metric=cfg.mutual_metric, stop_grad=cfg.mutual_stop_grad
        )
    if w["norm"] > 0:
        terms["norm"] = norm_loss(
            outputs.attn, outputs.v_atn, outputs.f_atn, all_attentions=cfg.all_attentions
        )
    if w["opposite"] > 0:
        terms["opposite"] = opposite_loss(
            outputs.cas,
            outputs.attn,
            outputs.v_atn,
            outputs.f_atn,
            all_attentions=cfg.all_attentions,
            detach_background=cfg.detach_background,
        )
    if not terms:
        raise ValueError("LossConfig: every loss weight is 0; nothing to train on")
    contributions = [w[name] * value for name, value in terms.items()]
    total = contributions[0]
    for contribution in contributions[1:]:
        total = total + contribution
    return total, terms
