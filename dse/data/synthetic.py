"""Small datasets in the real file formats, for tests and benchmarks that must not download."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dse.data.formats import write_idx
from dse.data.sources import SOURCES


def synthetic_digits(n: int, seed: int, size: int = 28, classes: int = 10):
    """Images whose class is a bright 6x6 block at a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 4)
        images[i, 3 + row * 7 : 9 + row * 7, 3 + col * 6 : 9 + col * 6] = 255
    return images, labels


def write_idx_dataset(folder: Path, n_train: int = 600, n_test: int = 200, gz: bool = True) -> Path:
    """An MNIST-format dataset (the four IDX files) in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {
        role: f.name if gz else f.name.removesuffix(".gz")
        for role, f in SOURCES["mnist"].files.items()
    }
    train_x, train_y = synthetic_digits(n_train, seed=1)
    test_x, test_y = synthetic_digits(n_test, seed=2)
    write_idx(folder / names["train_images"], train_x)
    write_idx(folder / names["train_labels"], train_y)
    write_idx(folder / names["test_images"], test_x)
    write_idx(folder / names["test_labels"], test_y)
    return folder
