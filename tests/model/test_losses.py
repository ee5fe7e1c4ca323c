from __future__ import annotations

import torch

from dse.model.losses import margin_loss, reconstruction_loss


def test_margin_loss_by_hand():
    lengths = torch.tensor([[0.95, 0.05, 0.5], [0.3, 0.2, 0.0]])
    labels = torch.tensor([0, 1])
    # sample 0: present 0 (0.95 > 0.9); absent: 0 (0.05 < 0.1) + 0.5 * 0.4^2 = 0.08
    # sample 1: present (0.9 - 0.2)^2 = 0.49; absent 0.5 * 0.2^2 = 0.02 + 0
    expected = (0.08 + 0.49 + 0.02) / 2
    assert torch.isclose(margin_loss(lengths, labels), torch.tensor(expected))


def test_reconstruction_loss_is_per_image_sum_then_batch_mean():
    images = torch.zeros(2, 1, 2, 2)
    recon = torch.tensor([[1.0, 0, 0, 0], [1.0, 1.0, 1.0, 0]])
    assert reconstruction_loss(recon, images).item() == 2.0  # (1 + 3) / 2
