from __future__ import annotations

import torch

from dse.data.batching import center_crops, random_crops, to_float


def test_random_crops_are_shifts_within_the_padding():
    image = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    image[0, 0, 14, 14] = 255  # one bright pixel: its new place gives the shift
    batch = image.repeat(500, 1, 1, 1)
    out = random_crops(batch, pad=2, size=28, generator=torch.Generator().manual_seed(0))
    assert out.shape == (500, 1, 28, 28) and out.dtype == torch.uint8
    where = (out[:, 0] == 255).nonzero()[:, 1:] - 14  # (dy, dx) per image
    assert len(where) == 500  # the pixel is never cut off with a 2 px shift
    assert where.abs().max() == 2
    assert len({tuple(w.tolist()) for w in where}) == 25  # every shift in [-2, 2]^2 occurs


def test_random_crops_are_seeded():
    batch = torch.randint(0, 255, (8, 2, 48, 48), dtype=torch.uint8)
    a = random_crops(batch, 0, 32, torch.Generator().manual_seed(3))
    b = random_crops(batch, 0, 32, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (8, 2, 32, 32)


def test_random_crop_content_is_a_window_of_the_image():
    batch = torch.arange(2 * 48 * 48, dtype=torch.int64).view(1, 2, 48, 48).to(torch.uint8)
    big = torch.arange(2 * 48 * 48).view(1, 2, 48, 48)
    out = random_crops(big, 0, 32, torch.Generator().manual_seed(1))
    top, left = divmod(int(out[0, 0, 0, 0]), 48)
    assert torch.equal(out, big[:, :, top : top + 32, left : left + 32])
    assert batch.shape == (1, 2, 48, 48)


def test_center_crop_and_float():
    x = torch.arange(48 * 48).view(1, 1, 48, 48)
    crop = center_crops(x, 32)
    assert crop[0, 0, 0, 0] == 8 * 48 + 8 and crop.shape[-1] == 32
    assert to_float(torch.tensor([0, 255], dtype=torch.uint8)).tolist() == [0.0, 1.0]
