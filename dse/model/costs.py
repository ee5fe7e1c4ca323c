"""Analytic per-sample costs: a multiply-add counts as 2 FLOPs; biases and activations are free.

Training FLOPs are taken as 3x the forward (forward + two backward products), the usual
estimate; it makes train_gflops a cost that timing noise cannot move.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

TRAIN_FLOPS_FACTOR = 3


@dataclass(frozen=True)
class LayerCost:
    name: str
    params: int
    flops: int  # forward, per sample


def conv_flops(conv: nn.Conv2d, output_positions: int) -> int:
    kh, kw = conv.kernel_size
    macs_per_output = conv.in_channels // conv.groups * kh * kw
    return 2 * conv.out_channels * output_positions * macs_per_output


def linear_flops(linear: nn.Linear) -> int:
    return 2 * linear.in_features * linear.out_features
