from __future__ import annotations

import json

from typer.testing import CliRunner

from dse.cli import app
from dse.train.checkpoint import load_checkpoint
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


def test_the_file_format_is_a_plain_tagged_dict(tmp_path):
    """What older versions wrote (and what load reads): a dict with these keys, result optional."""
    import torch

    from dse.model import build_model

    config = tiny_config()
    state = build_model(config.model, (1, 28, 28), 10).state_dict()
    payload = {"format": "dse-checkpoint-1", "config": config.to_dict(), "state_dict": state}
    torch.save(payload, tmp_path / "old.pt")
    loaded = load_checkpoint(tmp_path / "old.pt")
    assert loaded.config == config and loaded.result == {}
    assert loaded.model().state_dict().keys() == state.keys()


def test_a_per_epoch_checkpoint_is_named_as_one(digits_root, tmp_path):
    """evaluate on the file `--keep-checkpoints` leaves: said what it is, not 'foreign'."""
    import pytest

    from dse.errors import DataError
    from dse.train.resume import ResumeFile
    from dse.train.seeds import train_seeds

    file = ResumeFile(tmp_path / "run.pt", resume=False, keep=True)
    train_seeds(tiny_config(), "cpu", digits_root, resume=file)
    with pytest.raises(DataError, match="run.pt: not a dse checkpoint \\(a per-epoch checkpoint"):
        load_checkpoint(tmp_path / "run.pt")


def test_a_tagged_file_that_lacks_a_field_names_it(tmp_path):
    """The format tag with no config said "no 'dse-checkpoint-1' format tag": the tag is
    there, the config is what is missing."""
    import pytest
    import torch

    from dse.errors import DataError

    torch.save({"format": "dse-checkpoint-1", "state_dict": {}}, tmp_path / "noconfig.pt")
    torch.save({"format": "dse-checkpoint-7", "config": {}}, tmp_path / "other.pt")
    torch.save({"weights": {}}, tmp_path / "plain.pt")
    for name, why in (
        ("noconfig", "its 'dse-checkpoint-1' format tag, but no config"),
        ("other", "its format tag is 'dse-checkpoint-7', not 'dse-checkpoint-1'"),
        ("plain", "no 'dse-checkpoint-1' format tag"),
    ):
        with pytest.raises(DataError) as error:
            load_checkpoint(tmp_path / f"{name}.pt")
        assert str(error.value) == f"{tmp_path / name}.pt: not a dse checkpoint ({why})"
