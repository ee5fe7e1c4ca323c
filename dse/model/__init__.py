"""Models, registered by name: `build_model(config.model, input_shape, n_classes)`."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from dse.config import CapsNetConfig, CnnConfig
from dse.errors import ConfigError
from dse.model.baseline import CnnBaseline
from dse.model.capsnet import CapsNet
from dse.model.costs import LayerCost

MODELS: dict[str, type[nn.Module]] = {"capsnet": CapsNet, "cnn_baseline": CnnBaseline}


def build_model(
    config: CapsNetConfig | CnnConfig, input_shape: tuple[int, int, int], n_classes: int
) -> nn.Module:
    try:
        return MODELS[config.name](config, input_shape, n_classes)
    except ValueError as exc:  # a width combination the input size cannot hold
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class ModelSummary:
    layers: list[LayerCost]
    params: int
    flops_per_sample: int  # forward


def summarize(model: nn.Module) -> ModelSummary:
    layers = model.costs()
    params = sum(p.numel() for p in model.parameters())
    assert params == sum(layer.params for layer in layers), "a layer is missing from costs()"
    return ModelSummary(layers=layers, params=params, flops_per_sample=sum(r.flops for r in layers))


__all__ = [
    "MODELS",
    "CapsNet",
    "CnnBaseline",
    "LayerCost",
    "ModelSummary",
    "build_model",
    "summarize",
]
