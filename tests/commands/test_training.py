"""`dse train`'s command: the line a Ctrl-C leaves, wherever it lands."""

from __future__ import annotations

import signal

import pytest

from dse import commands
from dse.errors import Interrupted
from dse.train.resume import ResumeFile

TINY = ["epochs=2", "dataset.val_size=100", "model.conv_channels=8", "model.primary_types=2"]


def _ctrl_c(*args, **kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_before_the_first_epoch_has_nothing_to_resume(workdir, monkeypatch):
    monkeypatch.setattr("dse.train.seeds.train_seeds", _ctrl_c)
    with pytest.raises(Interrupted) as raised:
        commands.train(None, "baseline", TINY)
    assert str(raised.value) == "interrupted before the first epoch finished: nothing to resume"
    assert raised.value.exit_code == 128 + signal.SIGINT


def test_ctrl_c_of_a_resumed_run_names_its_file_and_the_options_given(workdir, monkeypatch):
    commands.train(None, "baseline", TINY, threads=1, keep_checkpoints=True)
    kept = "results/checkpoints/train-baseline.pt"
    assert ResumeFile(workdir / kept).config().epochs == 2
    monkeypatch.setattr("dse.train.seeds.train_seeds", _ctrl_c)
    with pytest.raises(Interrupted) as raised:
        commands.train(None, None, [], data_dir="data", save="m.pt", threads=1, resume=kept)
    assert str(raised.value) == (
        f"interrupted after epoch 2 of 2; resume with: dse train --resume {kept} "
        "--data-dir data --threads 1 --save m.pt"
    )
