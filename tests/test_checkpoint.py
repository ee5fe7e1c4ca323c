from __future__ import annotations

import json

from typer.testing import CliRunner

from dse.checkpoint import load_checkpoint
from dse.cli import app
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
