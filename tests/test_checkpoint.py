from __future__ import annotations

import json
import pickle

import pytest
import torch
from typer.testing import CliRunner

from dse.checkpoint import load_checkpoint
from dse.cli import app
from dse.errors import DataError
from dse.train.trainer import train
from tests.conftest import tiny_config

runner = CliRunner()


def test_checkpoint_round_trip_reproduces_accuracy_exactly(digits_root, tmp_path):
    result = train(tiny_config("epochs=2"), data_dir=digits_root, checkpoint=tmp_path / "m.pt")
    for split, expected in (("test", result.test_accuracy), ("val", result.val_accuracy)):
        out = runner.invoke(
            app,
            [
                "evaluate",
                "--checkpoint",
                str(tmp_path / "m.pt"),
                "--split",
                split,
                "--data-dir",
                str(digits_root),
                "--format",
                "json",
            ],
        )
        assert out.exit_code == 0, out.stderr
        assert json.loads(out.stdout.splitlines()[-1])["accuracy"] == expected
    assert load_checkpoint(tmp_path / "m.pt").config == tiny_config("epochs=2")


def _bad_files(tmp_path, digits_root):
    train(tiny_config(), data_dir=digits_root, checkpoint=tmp_path / "good.pt")
    raw = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "foreign.pt").write_bytes(pickle.dumps({"format": "x", "payload": object.__name__}))
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(ValueError("runs code")))
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.pt")
    (tmp_path / "text.pt").write_text("hello")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("name", ["truncated", "foreign", "evil", "plain", "text", "missing"])
def test_bad_checkpoints_exit_2_with_one_line(digits_root, tmp_path, name):
    _bad_files(tmp_path, digits_root)
    path = tmp_path / f"{name}.pt"
    with pytest.raises(DataError, match="not a dse checkpoint|no such checkpoint"):
        load_checkpoint(path)
    result = runner.invoke(
        app, ["evaluate", "--checkpoint", str(path), "--data-dir", str(digits_root)]
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "Traceback" not in result.stderr
