"""Whole training steps of the full-size model against the reference (golden `train_steps/`).

Each case fixes the initialisation seed, the dropout seed, the Adam settings and the batches;
the model must draw its initial weights and its dropout masks in the reference's order and
update them as the reference's Adam (coupled weight decay) does.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from golden import golden_cases

from co2net_pipeline.method.losses import LossConfig
from co2net_pipeline.method.model import ModelConfig, build_model
from co2net_pipeline.method.training import train_step

CASES = golden_cases("train_steps")


def _stats(values: torch.Tensor) -> dict[str, float]:
    flat = values.detach().double().reshape(-1)
    return {
        "sum": float(flat.sum()),
        "l2": float(flat.norm()),
        "first": float(flat[0]),
        "last": float(flat[-1]),
    }


def _load(case):
    meta = json.loads((case / "meta.json").read_text())
    expected = json.loads((case / "expected.json").read_text())
    inputs = dict(np.load(case / "inputs.npz"))
    probe = dict(np.load(case / "expected_probe.npz"))
    return meta, expected, inputs, probe


def _model_config(meta: dict, include_feat_encoder: bool) -> ModelConfig:
    """The case's model; an ActivityNet case's pooling kernel follows its `model.max_seqlen`
    and `model.t` (the original's `--max-seqlen`, `--t`) and must be its `model.pool_kernel`."""
    model = meta["model"]
    pooling = {"max_seqlen": model["max_seqlen"]} if "max_seqlen" in model else {}
    if "t" in model:
        pooling["pool_t"] = model["t"]
    cfg = ModelConfig(
        feature_dim=meta["feature_dim_per_modality"],
        n_classes=meta["C"],
        attention_hidden=model["attention_hidden"],
        dropout=model["dropout"],
        ccm_dropout=model["ccm_dropout"],
        variant=model["variant"],
        include_feat_encoder=include_feat_encoder,
        **pooling,
    )
    assert cfg.smoothing_kernel == model.get("pool_kernel"), "pooling kernel differs"
    return cfg


def _loss_config(meta: dict) -> LossConfig:
    loss = meta["loss"]
    return LossConfig.from_dict({"topk_divisor": loss["topk_divisor"], **loss["weights"]})


def _check_parameters(model: torch.nn.Module, entries: list[dict], initial: bool) -> None:
    """Parameters in the reference's registration order (unused ones only where the model
    has them); drawn initial values to 1e-7, trained ones to the README's tolerances."""
    params = dict(model.named_parameters())
    names = [e["reference_name"] for e in entries if e["reference_name"] in params]
    assert names == list(params), "parameter registration order differs from the reference"
    for entry in entries:
        name = entry["reference_name"]
        if name not in params:
            assert not entry["used_in_forward"], f"{name}: used by the reference, missing here"
            continue
        got = _stats(params[name])
        assert list(params[name].shape) == entry["shape"], name
        if initial:
            for key in ("sum", "l2", "first", "last"):
                assert got[key] == pytest.approx(entry[key], rel=1e-7, abs=1e-7), (name, key)
            continue
        assert got["l2"] == pytest.approx(entry["l2"], rel=1e-5, abs=1e-12), (name, "l2")
        assert got["sum"] == pytest.approx(entry["sum"], rel=1e-3, abs=1e-3), (name, "sum")
        for key in ("first", "last"):
            assert got[key] == pytest.approx(entry[key], rel=1e-3, abs=1e-6), (name, key)


@pytest.mark.parametrize("case", CASES)
def test_golden_train_steps_initial_parameters_with_feat_encoder(case, one_torch_thread) -> None:
    """With the reference's unused feat_encoder created, every one of its parameters matches
    too: the draws it consumes are where the reference makes them."""
    meta, expected, _, _ = _load(case)
    torch.manual_seed(meta["init_seed"])
    model = build_model(_model_config(meta, include_feat_encoder=True))
    assert sum(p.numel() for p in model.parameters()) == expected["n_parameters"]
    _check_parameters(model, expected["initial_parameters"], initial=True)


@pytest.mark.parametrize("case", CASES)
def test_golden_train_steps(case, one_torch_thread) -> None:
    """The default model (no feat_encoder, its draws discarded): same initial weights, same
    step losses, same weights after the steps, same eval-mode outputs on the probe."""
    meta, expected, inputs, probe = _load(case)
    torch.manual_seed(meta["init_seed"])
    model = build_model(_model_config(meta, include_feat_encoder=False))
    _check_parameters(model, expected["initial_parameters"], initial=True)
    opt = meta["optimizer"]
    assert opt["name"] == "Adam"
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=opt["lr"],
        betas=tuple(opt["betas"]),
        eps=opt["eps"],
        weight_decay=opt["weight_decay"],
    )
    loss_cfg = _loss_config(meta)
    torch.manual_seed(meta["step_seed"])
    model.train()
    losses = []
    for step in range(meta["n_steps"]):
        x = torch.from_numpy(inputs[f"features_{step}"])
        y = torch.from_numpy(inputs[f"labels_{step}"])
        total, _ = train_step(model, optimizer, x, y, loss_cfg)
        losses.append(float(total.detach()))
    np.testing.assert_allclose(losses, expected["step_losses"], rtol=1e-5)
    _check_parameters(model, expected["final_parameters"], initial=False)
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(inputs["probe"]))
    np.testing.assert_allclose(out.cas[0].numpy(), probe["cas"], atol=1e-4)
    for name in ("attn", "v_atn", "f_atn"):
        np.testing.assert_allclose(getattr(out, name)[0, :, 0].numpy(), probe[name], atol=1e-5)
