"""`dse train`'s command: the line a Ctrl-C leaves, wherever it lands."""

from __future__ import annotations

import signal

import pytest

from dse import commands
from dse.data.synthetic import write_idx_dataset
from dse.errors import DataError, Interrupted
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


def test_csv_is_one_table_and_progress_stays_off_stdout(workdir):
    from typer.testing import CliRunner

    from dse.cli import app

    args = ["train", "--preset", "baseline", *(f"--set={s}" for s in TINY), "--threads", "1"]
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0, table.stderr
    assert "epoch 1/2" in table.stderr and "epoch 1/2" not in table.stdout
    csv = CliRunner().invoke(app, [*args, "--format", "csv"])
    header, *rows = csv.stdout.splitlines()
    assert header.startswith("epoch,batch_size,steps,") and len(rows) == 2
    assert all(row.count(",") == header.count(",") for row in rows)
    failed = CliRunner().invoke(app, [*args, "--data-dir", "/nonexistent"])
    assert (failed.exit_code, failed.stdout) == (2, "")
    assert failed.stderr == "error: --data-dir /nonexistent: no such directory\n"


def test_save_with_repeats_says_whose_weights_it_holds(workdir):
    """The file holds the first seed's weights: its test accuracy, not the seeds' mean."""
    shown = commands.train(None, "baseline", [*TINY, "epochs=1", "repeats=2"], save="m.pt")
    first = shown.data["per_seed"][0]
    assert shown.footer == (
        f"saved m.pt: seed 0's weights (test_accuracy {first['test_accuracy']}; "
        "above, the mean of 2 seeds)"
    )
    assert commands.evaluate("m.pt").data["accuracy"] == first["test_accuracy"]


def test_a_resumed_file_is_the_users_kept_and_a_complete_one_trains_nothing(workdir, monkeypatch):
    """--resume FILE never removes FILE (only checkpoints dse made are cleaned up); resuming it
    once complete says so instead of reporting it as trained."""
    write = ResumeFile.write

    def stop_after_epoch_1(self, state):
        write(self, state)
        if state.epoch == 1:
            raise KeyboardInterrupt

    with monkeypatch.context() as patched, pytest.raises(Interrupted):
        patched.setattr(ResumeFile, "write", stop_after_epoch_1)
        commands.train(None, "baseline", TINY, threads=1)
    kept = "results/checkpoints/train-baseline.pt"
    resumed = commands.train(None, None, [], threads=1, resume=kept)
    assert resumed.data["resumed_from_epoch"] == 1 and len(resumed.data["history"]) == 2
    assert resumed.notes == [f"checkpoint kept: {kept}"]
    assert ResumeFile(workdir / kept).latest() is None and ResumeFile(workdir / kept).config()
    again = commands.train(None, None, [], threads=1, resume=kept)
    assert again.notes == [
        f"{kept}: already complete (2 of 2 epochs): nothing trained; the result is the checkpoint's"
    ]
    assert again.data["history"] == resumed.data["history"] and (workdir / kept).is_file()


def _no_training(*args, **kwargs):
    raise AssertionError("trained before its data was checked")


def test_a_subset_larger_than_the_data_is_one_line_naming_the_file_before_anything(
    workdir, monkeypatch
):
    """Found before training starts (not in data loading: the key alone, after the set-up)."""
    from typer.testing import CliRunner

    from dse.cli import app

    monkeypatch.setattr("dse.commands.training.set_torch_threads", _no_training)
    (workdir / "big.yaml").write_text("dataset: {val_size: 100, train_subset: 100000}\n")
    data = workdir / "data" / "mnist"
    given = [
        (["--config", "big.yaml"], "big.yaml: dataset.train_subset: 100000"),
        (
            [
                "--preset",
                "adabatch",
                "--set",
                "dataset.val_size=100",
                "--set",
                "dataset.test_subset=101",
            ],
            "--preset adabatch with --set: dataset.test_subset: 101",
        ),
    ]
    for args, start in given:
        result = CliRunner().invoke(app, ["train", *args, "--keep-checkpoints"])
        assert (result.exit_code, result.stdout) == (2, ""), result.stderr
        more = (
            f"300 samples after dataset.val_size in {data / 'train-images-idx3-ubyte.gz'}"
            if "train_subset" in start
            else f"100 samples in {data / 't10k-images-idx3-ubyte.gz'}"
        )
        assert result.stderr == f"error: {start} is more than the {more}\n"
    assert sorted(p.name for p in workdir.iterdir()) == ["big.yaml", "data"]


def test_a_resumed_checkpoint_whose_subset_the_data_cannot_give_is_named(workdir, monkeypatch):
    commands.train(None, "baseline", TINY, threads=1, keep_checkpoints=True)
    kept = "results/checkpoints/train-baseline.pt"
    write_idx_dataset(workdir / "small" / "mnist", n_train=50, n_test=100)
    monkeypatch.setattr("dse.commands.training.set_torch_threads", _no_training)
    with pytest.raises(DataError) as raised:
        commands.train(None, None, [], data_dir="small", resume=kept)
    assert str(raised.value).startswith(f"{kept}: dataset.val_size: 100 leaves no training data")
