"""Losses of CapsNet (Sabour et al. 2017): margin loss and the decoder's reconstruction loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

M_PLUS, M_MINUS, LAMBDA = 0.9, 0.1, 0.5


def margin_loss(lengths: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """T max(0, 0.9 - |v|)^2 + 0.5 (1 - T) max(0, |v| - 0.1)^2.

    Summed over classes, mean over the batch: lengths [..., B, J] and labels [..., B] give one
    mean per leading index (a stacked model's K models: [K]).
    """
    target = F.one_hot(labels, lengths.shape[-1]).to(lengths.dtype)  # [..., B, J]
    present = target * F.relu(M_PLUS - lengths).pow(2)
    absent = LAMBDA * (1.0 - target) * F.relu(lengths - M_MINUS).pow(2)
    return (present + absent).sum(-1).mean(-1)


def reconstruction_loss(reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Per-image sum of squared errors, mean over the batch (reconstruction [..., B, C*H*W],
    images [..., B, C, H, W]: one mean per leading index)."""
    flat = images.flatten(-3)
    return (reconstruction - flat).pow(2).sum(-1).mean(-1)
