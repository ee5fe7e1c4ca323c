"""Fixtures of the reliability suite: a working folder holding a small synthetic MNIST."""

from __future__ import annotations

import pytest

from tests.conftest import write_idx_dataset


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """cwd = a fresh folder with data/mnist (400 training, 100 test images); DSE_DATA_DIR set."""
    write_idx_dataset(tmp_path / "data" / "mnist", n_train=400, n_test=100)
    monkeypatch.setenv("DSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path
