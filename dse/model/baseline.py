"""The CNN baseline of the profiling study.

conv5x5-32, pool, conv5x5-64, pool, FC 1024, dropout, FC; "same" padding, 2x2 max pooling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dse.config import CnnConfig
from dse.model.costs import LayerCost, conv_flops, linear_flops
from dse.model.scopes import layer_scope


@dataclass
class CnnOutput:
    scores: torch.Tensor  # [B, J] logits
    reconstruction: None = None


class CnnBaseline(nn.Module):
    def __init__(self, config: CnnConfig, input_shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        self.config, self.input_shape = config, input_shape
        c_in, h, w = input_shape
        self.conv1 = nn.Conv2d(c_in, config.conv1_channels, 5, padding=2)  # "same"
        self.conv2 = nn.Conv2d(config.conv1_channels, config.conv2_channels, 5, padding=2)
        self.pooled = (h // 4, w // 4)
        self.fc1 = nn.Linear(
            config.conv2_channels * self.pooled[0] * self.pooled[1], config.fc_units
        )
        self.dropout = nn.Dropout(config.dropout)
        self.fc2 = nn.Linear(config.fc_units, n_classes)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, reconstruct: bool = True
    ) -> CnnOutput:
        """labels and reconstruct: the CapsNet's interface (a CNN has no decoder)."""
        with layer_scope("conv1"):
            h = F.max_pool2d(F.relu(self.conv1(x)), 2)  # [B, 32, H/2, W/2]
        with layer_scope("conv2"):
            h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # [B, 64, H/4, W/4]
        with layer_scope("fc1"):
            h = self.dropout(F.relu(self.fc1(h.flatten(1))))  # [B, 1024]
        with layer_scope("fc2"):
            return CnnOutput(scores=self.fc2(h))

    def loss(
        self, out: CnnOutput, x: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(out.scores.float(), labels)
        return {"loss": ce, "cross_entropy": ce}

    def costs(self) -> list[LayerCost]:
        _, h, w = self.input_shape
        return [
            LayerCost("conv1", _params(self.conv1), conv_flops(self.conv1, h * w)),
            LayerCost("conv2", _params(self.conv2), conv_flops(self.conv2, (h // 2) * (w // 2))),
            LayerCost("fc1", _params(self.fc1), linear_flops(self.fc1)),
            LayerCost("fc2", _params(self.fc2), linear_flops(self.fc2)),
        ]


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
