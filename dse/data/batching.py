"""Batches made on the training device: random crops (shifts) in training, center crops at test."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crops(
    images: torch.Tensor, pad: int, size: int, generator: torch.Generator
) -> torch.Tensor:
    """Zero-pad by `pad`, then cut a random size x size window per image (uint8 in, uint8 out).

    With pad 2 and size 28 on MNIST this is the +-2 px random shift of Sabour et al.
    """
    if pad:
        images = F.pad(images, (pad, pad, pad, pad))
    b, _, h, w = images.shape
    dev = images.device
    top = torch.randint(0, h - size + 1, (b,), generator=generator, device=dev)
    left = torch.randint(0, w - size + 1, (b,), generator=generator, device=dev)
    offsets = torch.arange(size, device=dev)
    rows = (top[:, None] + offsets)[:, :, None]  # [B, size, 1]
    cols = (left[:, None] + offsets)[:, None, :]  # [B, 1, size]
    batch = torch.arange(b, device=dev)[:, None, None]
    # Advanced indices around a slice put their dims first: [B, size, size, C].
    return images[batch, :, rows, cols].permute(0, 3, 1, 2)


def center_crops(images: torch.Tensor, size: int) -> torch.Tensor:
    h, w = images.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top : top + size, left : left + size]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels to floats in [0, 1]."""
    return images.float().div_(255.0)
