"""Whole-video inference over the test subset, stored so proposals can be re-tuned without the model."""

from __future__ import annotations

import torch

from co2net_pipeline.inference import run_inference
from co2net_pipeline.model import ModelConfig, build_model
from co2net_pipeline.training import select_device


def load_trained_model(trained_model: dict):
    model = build_model(ModelConfig.from_dict(trained_model["model_config"]))
    model.load_state_dict(trained_model["state_dict"])
    return model.eval()


def infer_test_set(trained_model: dict, feature_store, data_split: dict, params: dict) -> dict:
    """Per test video: `cas` (T, C+1) logits, `attention`, `v_atn`, `f_atn` (T,)."""
    model = load_trained_model(trained_model)
    device = select_device(params.get("device", "auto"))
    features = feature_store.load_all(data_split["test"])
    previous = torch.get_num_threads()
    if params.get("cpu_threads"):
        # small models: extra OpenMP threads stall when other processes share the cores
        torch.set_num_threads(int(params["cpu_threads"]))
    try:
        return run_inference(
            model.to(device),
            features,
            device,
            batching=params.get("batching", "padded"),
            autocast_bf16=params.get("bf16", False),
        )
    finally:
        torch.set_num_threads(previous)
