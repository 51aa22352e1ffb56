"""CO2-Net modules and the ablation variants."""

from co2net_pipeline.method.model.co2net import (
    CO2Net,
    ModelConfig,
    ModelOutputs,
    build_model,
    count_parameters,
    load_reference_state_dict,
)

__all__ = [
    "CO2Net",
    "ModelConfig",
    "ModelOutputs",
    "build_model",
    "count_parameters",
    "load_reference_state_dict",
]
