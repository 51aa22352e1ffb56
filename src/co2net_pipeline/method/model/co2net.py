"""CO2-Net: cross-modal consensus modules, fused attention and the CAS classifier (spec §2).

Module and parameter names follow the reference implementation (`vAttn`, `fAttn`, `fusion`,
`classifier`, and inside each consensus unit `bit_wise_attn`, `channel_conv`, `attention`), so
a reference state_dict loads after dropping its unused `feat_encoder.*` entries
(`load_reference_state_dict`).

Shapes, in the spec's words: input snippet features `x: (B, T, 2D)` (RGB first, then Flow);
`feat: (B, T, 2D)` fused features, `cas: (B, T, C+1)` logits (background = last column),
`attn`, `v_atn`, `f_atn: (B, T, 1)` attention in (0, 1).

`ModelConfig` fields (defaults: conf/base's CPU-sized model; the reference THUMOS14 model has
feature_dim 1024 and attention_hidden 512, conf/thumos14):
    feature_dim: channels per modality D (RGB and Flow each); input has 2D columns.
    n_classes: C action classes; the CAS has C+1 columns (background last).
    attention_hidden: channels of the two hidden convs of the attention unit.
    dropout: `--dropout_ratio`, the fusion dropout and the FIRST classifier dropout.
    classifier_dropout_2: second classifier dropout. Reference quirk: hard-coded 0.7,
        independent of `dropout`; the paper says "0.7 between each conv layer".
    ccm_dropout: dropout after both consensus descriptors. Reference: hard-coded 0.5;
        the paper says 0.7 everywhere.
    attention_dropout: dropout inside the attention unit (after its first conv and on the
        logit). Reference: hard-coded 0.5; the paper says 0.7.
    attention_logit_dropout: reference quirk: dropout is applied to the attention LOGIT
        just before the sigmoid (dropped snippets get attention 0.5 in training, kept
        logits are scaled by 1/(1-p)). The paper mentions no such dropout; False removes it.
    variant: "thumos14" (class `CO2`) or "activitynet12" (class `ANT_CO2`, which adds a
        fixed temporal AvgPool1d smoothing of cas/attn/v_atn/f_atn; not in the paper).
    max_seqlen, pool_t: the ActivityNet smoothing kernel is
        K = ((max_seqlen // pool_t) // 2) * 2 + 1, as the original's `ANT_CO2` computes it from
        its `--max-seqlen` (60, t 5 => 13), used unchanged at test time whatever the video
        length. max_seqlen is `training.max_seqlen` (the training node sets it), not a `model`
        parameter: one key, as in the original.
    fusion: how the two modalities interact before attention (paper Table 6 ablation):
        "ccm" = cross-modal consensus module (reference, spec §2.1);
        "se" = SE baseline of spec §7.18 (main-modality-only channel gate,
        sigmoid(conv1(D->se_hidden) -> ReLU -> conv1(se_hidden->D)) of the temporal mean);
        "concat" = no re-calibration: each modality's attention unit sees its features
        concatenated with the other modality's (2D input channels), features pass
        unchanged to the fusion layer;
        "add" = no re-calibration: each attention unit sees the sum of the two
        modalities' features (D channels), features pass unchanged to the fusion layer.
        The Add/Concat variants are not in any reference commit; these are our definitions.
    main_descriptor, aux_descriptor: "global" (conv on the temporal mean, broadcast over
        time) or "local" (conv on every snippet) for the CCM's main-modality and
        auxiliary-modality descriptors. Reference: main "global", aux "local".
    se_hidden: bottleneck channels of the SE baseline (64 in the first reference commit).
    include_feat_encoder: create the reference's unused `feat_encoder` (conv(3, 2D->2D),
        12,584,960 parameters, never called); only needed for strict loading of released
        checkpoints (`load_reference_state_dict` drops it otherwise).
    seed_compatible_init: when the feat_encoder is not created, still draw the random
        numbers its creation and re-initialisation would consume (and discard them), so a
        given seed gives exactly the reference's initial weights for every used layer
        (when built on the same kind of device: the reference creates its tensors on the
        GPU, from the CUDA generator).
        False skips the draws (faster by ~0.1 s at full size; weights then differ from
        the reference's at the same seed for all layers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args

import torch
from torch import nn

from co2net_pipeline.common.config import dataclass_from_dict

Variant = Literal["thumos14", "activitynet12"]
Fusion = Literal["ccm", "concat", "add", "se"]
Descriptor = Literal["global", "local"]
VARIANTS: tuple[str, ...] = get_args(Variant)
FUSIONS: tuple[str, ...] = get_args(Fusion)
DESCRIPTORS: tuple[str, ...] = get_args(Descriptor)


@dataclass
class ModelConfig:
    """Every constant of the CO2-Net model: the single list of the `model` parameters, their
    types and defaults (`params.schema` derives the checked group from it; conf/base prints
    the defaults). Each field is described in the module docstring. n_classes comes from the
    class list and max_seqlen from `training.max_seqlen`, never from the `model` parameters."""

    feature_dim: int = 32
    n_classes: int = 20
    attention_hidden: int = 64
    dropout: float = 0.7
    classifier_dropout_2: float = 0.7
    ccm_dropout: float = 0.5
    attention_dropout: float = 0.5
    attention_logit_dropout: bool = True
    variant: Variant = "thumos14"
    max_seqlen: int = 60
    pool_t: int = 5
    fusion: Fusion = "ccm"
    main_descriptor: Descriptor = "global"
    aux_descriptor: Descriptor = "local"
    se_hidden: int = 64
    include_feat_encoder: bool = False
    seed_compatible_init: bool = True

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("variant", self.variant, VARIANTS),
            ("fusion", self.fusion, FUSIONS),
            ("main_descriptor", self.main_descriptor, DESCRIPTORS),
            ("aux_descriptor", self.aux_descriptor, DESCRIPTORS),
        ):
            if value not in allowed:
                raise ValueError(f"ModelConfig.{name}={value!r}: expected one of {allowed}")
        for name in ("feature_dim", "n_classes", "attention_hidden", "se_hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("dropout", "classifier_dropout_2", "ccm_dropout", "attention_dropout"):
            p = float(getattr(self, name))
            if not 0.0 <= p < 1.0:
                raise ValueError(f"ModelConfig.{name} must be in [0, 1), got {p}")

    @property
    def smoothing_kernel(self) -> int | None:
        """ActivityNet AvgPool1d kernel K, or None (THUMOS14: no smoothing)."""
        if self.variant != "activitynet12":
            return None
        return ((self.max_seqlen // self.pool_t) // 2) * 2 + 1

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ModelConfig:
        """Build from a parameters dictionary; unknown keys are an error (typos fail loudly)."""
        return dataclass_from_dict(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ModelOutputs(NamedTuple):
    """Model outputs, time-major.

    feat: (B, T, 2D) fused features (after the fusion layer); cas: (B, T, C+1) logits;
    attn: (B, T, 1) fused attention (v_atn + f_atn) / 2; v_atn, f_atn: (B, T, 1) RGB / Flow
    attention.
    """

    feat: torch.Tensor
    cas: torch.Tensor
    attn: torch.Tensor
    v_atn: torch.Tensor
    f_atn: torch.Tensor


def _conv(in_ch: int, out_ch: int, kernel: int) -> nn.Conv1d:
    # stride 1, zero padding k//2, with bias (spec "conv(k, in→out)")
    return nn.Conv1d(in_ch, out_ch, kernel, padding=kernel // 2)


def _attention_layers(
    in_ch: int, hidden: int, dropout: float, logit_dropout: bool
) -> nn.Sequential:
    """conv(3,in->h) -> LReLU -> Dropout -> conv(3,h->h) -> LReLU -> conv(1,h->1) [-> Dropout]
    -> sigmoid: (B, in, T) -> attention (B, 1, T)."""
    # Indices 0..7 match the reference's `attention` Sequential for state_dict loading.
    return nn.Sequential(
        _conv(in_ch, hidden, 3),
        nn.LeakyReLU(0.2),
        nn.Dropout(dropout),
        _conv(hidden, hidden, 3),
        nn.LeakyReLU(0.2),
        _conv(hidden, 1, 1),
        nn.Dropout(dropout) if logit_dropout else nn.Identity(),
        nn.Sigmoid(),
    )


def _temporal_mean(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """(B, C, T) -> (B, C, 1) mean over each video's own snippets (padding rows are zero)."""
    if valid is None:
        return x.mean(dim=-1, keepdim=True)
    return x.sum(dim=-1, keepdim=True) / valid.sum(dim=-1, keepdim=True)


def _zero_padding(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    # Padding positions must read as the zeros a conv's own padding would give a lone video.
    return x if valid is None else x.masked_fill(~valid, 0)


class ConsensusUnit(nn.Module):
    """CCM + attention unit for one main modality (spec §2.1), or an ablation variant.

    forward(main (B, D, T), aux (B, D, T), valid (B, 1, T) bool or None) -> (attention (B, 1, T),
    re-calibrated main (B, D, T)). `valid` marks each video's snippets in a padded batch.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.feature_dim
        self.fusion_kind = cfg.fusion
        self.main_global = cfg.main_descriptor == "global"
        self.aux_global = cfg.aux_descriptor == "global"
        # Creation order = reference order (local/aux conv, global/main conv, attention) so
        # that seeded initial weights match the reference.
        if cfg.fusion == "ccm":
            self.bit_wise_attn = nn.Sequential(
                _conv(d, d, 3), nn.LeakyReLU(0.2), nn.Dropout(cfg.ccm_dropout)
            )
            self.channel_conv = nn.Sequential(
                _conv(d, d, 3), nn.LeakyReLU(0.2), nn.Dropout(cfg.ccm_dropout)
            )
        elif cfg.fusion == "se":
            self.se_gate = nn.Sequential(
                _conv(d, cfg.se_hidden, 1), nn.ReLU(), _conv(cfg.se_hidden, d, 1), nn.Sigmoid()
            )
        attn_in = 2 * d if cfg.fusion == "concat" else d
        self.attention = _attention_layers(
            attn_in, cfg.attention_hidden, cfg.attention_dropout, cfg.attention_logit_dropout
        )

    def forward(
        self, main: torch.Tensor, aux: torch.Tensor, valid: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fusion_kind == "ccm":
            main_in = _temporal_mean(main, valid) if self.main_global else main
            aux_in = _temporal_mean(aux, valid) if self.aux_global else aux
            # The k=3 conv on a length-1 pooled vector only uses its centre tap (spec §2.1).
            # channel_conv runs before bit_wise_attn, as in the reference forward: in training
            # mode their dropout masks are drawn in this order from the torch stream.
            channel = self.channel_conv(main_in)
            gate = torch.sigmoid(self.bit_wise_attn(aux_in) * channel)
            recalibrated = _zero_padding(gate * main, valid)
            return self._attend(recalibrated, valid), recalibrated
        if self.fusion_kind == "se":
            recalibrated = self.se_gate(_temporal_mean(main, valid)) * main
            return self._attend(recalibrated, valid), recalibrated
        if self.fusion_kind == "concat":
            return self._attend(torch.cat((main, aux), dim=1), valid), main
        return self._attend(main + aux, valid), main  # "add"

    def _attend(self, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        if valid is None:
            return self.attention(x)
        # conv(3) -> LReLU -> Dropout, padding re-zeroed before the second conv(3) reads it
        hidden = _zero_padding(self.attention[:3](x), valid)
        return self.attention[3:](hidden)


def _discard_draws(device: torch.device, *shapes: tuple[int, ...]) -> None:
    """Consume exactly the uniform draws an init of tensors of these shapes would."""
    with torch.no_grad():
        for shape in shapes:
            torch.empty(shape, device=device).uniform_()


def _valid_mask(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, 1, T) bool: which rows of the padded batch x (B, T, 2D) are the videos' snippets."""
    if lengths.shape != (x.shape[0],) or not bool(((lengths >= 1) & (lengths <= x.shape[1])).all()):
        raise ValueError(
            f"lengths must be ({x.shape[0]},) snippet counts in 1..{x.shape[1]}, "
            f"got {lengths.tolist()}"
        )
    steps = torch.arange(x.shape[1], device=x.device)
    return (steps < lengths.to(x.device).view(-1, 1)).unsqueeze(1)


class CO2Net(nn.Module):
    """CO2-Net (reference class `CO2`, or `ANT_CO2` for variant "activitynet12").

    forward(x: (B, T, 2D) snippet features, RGB then Flow) -> ModelOutputs with
    feat (B, T, 2D), cas (B, T, C+1) logits, attn / v_atn / f_atn (B, T, 1).
    No softmax in the model; dropout is active in train mode only.

    forward(x, lengths) runs a padded batch of videos of different lengths: `lengths` (B,) are
    the videos' snippet counts, x[b, lengths[b]:] is padding. Every temporal mean uses the
    video's own snippets and padding is re-zeroed wherever a conv(3) or the pooling would read
    it, so each video's outputs (first lengths[b] rows; the rest is undefined) equal those of
    a forward pass of that video alone, up to floating-point rounding.
    """

    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or ModelConfig()
        self.cfg = cfg
        d2 = 2 * cfg.feature_dim
        self.vAttn = ConsensusUnit(cfg)
        self.fAttn = ConsensusUnit(cfg)
        if cfg.include_feat_encoder:
            # Reference dead code (never called); kept only for strict checkpoint loading.
            self.feat_encoder = nn.Sequential(
                _conv(d2, d2, 3), nn.LeakyReLU(0.2), nn.Dropout(cfg.dropout)
            )
        elif cfg.seed_compatible_init:
            # PyTorch's default Conv1d init of the absent feat_encoder: weight, then bias.
            _discard_draws(self.fAttn.attention[0].weight.device, (d2, d2, 3), (d2,))
        self.fusion = nn.Sequential(_conv(d2, d2, 1), nn.LeakyReLU(0.2), nn.Dropout(cfg.dropout))
        self.classifier = nn.Sequential(
            nn.Dropout(cfg.dropout),
            _conv(d2, d2, 3),
            nn.LeakyReLU(0.2),
            nn.Dropout(cfg.classifier_dropout_2),
            _conv(d2, cfg.n_classes + 1, 1),
        )
        kernel = cfg.smoothing_kernel
        self.pool: nn.Module = (
            nn.AvgPool1d(kernel, stride=1, padding=kernel // 2, count_include_pad=True)
            if kernel is not None
            else nn.Identity()
        )
        # The reference re-initialises after PyTorch's default init (which already consumed
        # random numbers), walking modules in creation order.
        self.vAttn.apply(_reference_init)
        self.fAttn.apply(_reference_init)
        if cfg.include_feat_encoder:
            self.feat_encoder.apply(_reference_init)
        elif cfg.seed_compatible_init:
            _discard_draws(self.fAttn.attention[0].weight.device, (d2, d2, 3))
        self.fusion.apply(_reference_init)
        self.classifier.apply(_reference_init)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> ModelOutputs:
        d = self.cfg.feature_dim
        if x.dim() != 3 or x.shape[-1] != 2 * d:
            raise ValueError(
                f"CO2Net input must be (B, T, {2 * d}) snippet features, got {tuple(x.shape)}"
            )
        valid = None if lengths is None else _valid_mask(x, lengths)
        feat = _zero_padding(x.transpose(1, 2), valid)
        rgb, flow = feat[:, :d], feat[:, d:]
        v_atn, v_feat = self.vAttn(rgb, flow, valid)
        f_atn, f_feat = self.fAttn(flow, rgb, valid)
        # Fused attention from the UNsmoothed a_r, a_f (ActivityNet smooths afterwards).
        attn = (f_atn + v_atn) / 2
        fused = _zero_padding(self.fusion(torch.cat((v_feat, f_feat), dim=1)), valid)
        cas = self.classifier(fused)
        if self.cfg.smoothing_kernel is not None and valid is not None:
            cas, attn, v_atn, f_atn = (_zero_padding(t, valid) for t in (cas, attn, v_atn, f_atn))
        cas = self.pool(cas)
        attn, v_atn, f_atn = self.pool(attn), self.pool(v_atn), self.pool(f_atn)
        return ModelOutputs(
            feat=fused.transpose(1, 2),
            cas=cas.transpose(1, 2),
            attn=attn.transpose(1, 2),
            v_atn=v_atn.transpose(1, 2),
            f_atn=f_atn.transpose(1, 2),
        )


def _reference_init(module: nn.Module) -> None:
    """kaiming_uniform_ with PyTorch defaults (a=0, fan_in, leaky_relu gain), biases 0."""
    if isinstance(module, nn.Conv1d | nn.Linear):
        nn.init.kaiming_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_model(cfg: ModelConfig | Mapping[str, Any] | None = None) -> CO2Net:
    """A freshly initialised CO2Net (uses the global torch RNG: seed it first)."""
    if cfg is None or isinstance(cfg, Mapping):
        cfg = ModelConfig.from_dict(cfg)
    return CO2Net(cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (the reference's used-parameter count when feat_encoder is absent)."""
    return sum(p.numel() for p in model.parameters())


def load_reference_state_dict(
    model: CO2Net, state_dict: Mapping[str, torch.Tensor], strict: bool = True
) -> None:
    """Load a reference `CO2`/`ANT_CO2` checkpoint, dropping the unused `feat_encoder.*`
    entries when this model was built without it."""
    has_encoder = hasattr(model, "feat_encoder")
    cleaned = {
        k.removeprefix("module."): v
        for k, v in state_dict.items()
        if has_encoder or not k.removeprefix("module.").startswith("feat_encoder.")
    }
    model.load_state_dict(cleaned, strict=strict)
