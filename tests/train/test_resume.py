"""Per-epoch checkpoints: a run stopped mid-epoch and resumed from its last complete epoch ends
with the same history and accuracies, bit for bit on the CPU, as a run never stopped."""

from __future__ import annotations

import pytest
import torch

from dse.errors import DataError
from dse.train.resume import ResumeFile, read_state
from dse.train.seeds import train_seeds
from dse.train.trainer import Observer
from tests.conftest import tiny_config, without_times

pytestmark = pytest.mark.usefixtures("one_thread")


class Stop(Exception):
    """Stands in for a kill: the run ends in the middle of an epoch."""


class StopAt(Observer):
    def __init__(self, epoch: int, step: int):
        self.at = (epoch, step)  # counted from 1

    def on_step(self, epoch, step_in_epoch):
        if (epoch + 1, step_in_epoch + 1) == self.at:
            raise Stop


def _stopped_then_resumed(config, digits_root, path, epoch, step):
    with pytest.raises(Stop):  # the observer follows the first seed only: stop it in seed 1
        stop = StopAt(epoch, step)
        train_seeds(config, data_dir=digits_root, observer=stop, resume=ResumeFile(path))
    saved = read_state(path)
    resumed = train_seeds(config, data_dir=digits_root, resume=ResumeFile(path))
    return saved, resumed


# exp_decay: the LR follows the global step; adabatch: the batch size changes at epoch 2;
# augmentation draws random crops from the data-order generator.
SCHEDULED = (
    "lr_policy.name=exp_decay",
    "lr_policy.decay_steps=3",
    "batch_schedule.name=adabatch",
    "batch_schedule.batch_size=50",
    "batch_schedule.milestones=[[2, 100]]",
)


@pytest.mark.parametrize("stop_epoch", [2, 4])
def test_a_run_resumed_mid_training_equals_an_uninterrupted_one(digits_root, tmp_path, stop_epoch):
    config = tiny_config("epochs=4", *SCHEDULED)
    reference = train_seeds(config, data_dir=digits_root)
    path = tmp_path / "run.pt"
    saved, resumed = _stopped_then_resumed(config, digits_root, path, stop_epoch, 2)

    assert (saved.seed_index, saved.epoch) == (0, stop_epoch - 1)
    assert without_times(resumed) == without_times(reference) | {
        "resumed_from_epoch": stop_epoch - 1
    }
    assert resumed.resumed_from_epoch == stop_epoch - 1 and resumed.resumed_seed is None
    # training time: the restored epochs' times and the new ones, nothing else
    assert resumed.train_time_s == pytest.approx(sum(r.epoch_time_s for r in resumed.history))
    assert [r.epoch_time_s for r in resumed.history[: stop_epoch - 1]] == [
        r["epoch_time_s"] for r in saved.progress["history"]
    ]
    assert not path.exists()  # removed once the run completed


def test_the_checkpoint_keeps_the_best_weights_only_when_they_are_not_the_models(
    digits_root, tmp_path
):
    config = tiny_config("epochs=3", "optimizer.lr=0.05")  # noisy: the best epoch moves about
    path = tmp_path / "run.pt"
    train_seeds(config, data_dir=digits_root, resume=ResumeFile(path, keep=True))
    state = read_state(path)
    best_epoch = state.progress["best"][1]
    assert state.epoch == 3 and len(state.progress["history"]) == 3
    if best_epoch == 3:
        assert state.progress["best_state"] is None
    else:
        assert state.progress["best_state"].keys() == state.model.keys()


def test_repeats_resume_at_the_seed_they_were_at(digits_root, tmp_path):
    config = tiny_config("epochs=2", "repeats=2", *SCHEDULED[:2])
    reference = train_seeds(config, data_dir=digits_root)
    path = tmp_path / "run.pt"
    first = ResumeFile(path, keep=True)
    train_seeds(config, data_dir=digits_root, resume=first)
    # Put the file back where a kill during the second seed's second epoch leaves it.
    done = read_state(path)
    assert (done.seed_index, done.epoch, len(done.finished)) == (1, 2, 1)
    seeds_first_epoch = _second_seed_after_one_epoch(config, digits_root, tmp_path)
    torch.save(seeds_first_epoch.to_dict(), path)

    resumed = train_seeds(config, data_dir=digits_root, resume=ResumeFile(path))
    assert (resumed.resumed_seed, resumed.resumed_from_epoch) == (1, 1)
    expected = without_times(reference) | {"resumed_from_epoch": 1, "resumed_seed": 1}
    got = without_times(resumed)
    for times in ("per_seed", "seed_std"):  # times differ run to run
        expected.pop(times), got.pop(times)
    assert got == expected
    assert [s["val_accuracy"] for s in resumed.per_seed] == [
        s["val_accuracy"] for s in reference.per_seed
    ]
    assert not path.exists()


def _second_seed_after_one_epoch(config, digits_root, tmp_path):
    """The checkpoint a run of `config` holds after the second seed's first epoch."""

    class StopSecondSeed(Exception):
        pass

    path = tmp_path / "partial.pt"
    resume = ResumeFile(path)
    original_write = resume.write

    def write(state):
        original_write(state)
        if state.seed_index == 1 and state.epoch == 1:
            raise StopSecondSeed

    resume.write = write
    with pytest.raises(StopSecondSeed):
        train_seeds(config, data_dir=digits_root, resume=resume)
    return read_state(path)


def test_a_checkpoint_of_another_config_is_not_resumed(digits_root, tmp_path):
    path = tmp_path / "run.pt"
    train_seeds(tiny_config("epochs=1"), data_dir=digits_root, resume=ResumeFile(path, keep=True))
    other = tiny_config("epochs=2")
    with pytest.warns(UserWarning, match="written for another config: starting afresh"):
        result = train_seeds(other, data_dir=digits_root, resume=ResumeFile(path))
    assert result.resumed_from_epoch is None and len(result.history) == 2


def test_a_save_checkpoint_is_not_a_resume_checkpoint(digits_root, tmp_path):
    from dse.train.trainer import train

    train(tiny_config(), data_dir=digits_root, checkpoint=tmp_path / "best.pt")
    with pytest.raises(DataError, match="holds only best weights"):
        ResumeFile(tmp_path / "best.pt").config()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="not a file written by torch.save"):
        ResumeFile(tmp_path / "junk.pt").config()


def test_an_unwritable_checkpoint_is_a_warning_and_the_run_goes_on(digits_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    resume = ResumeFile(blocker / "run.pt")  # its folder is a file
    with pytest.warns(UserWarning, match="cannot write the checkpoint"):
        result = train_seeds(tiny_config("epochs=2"), data_dir=digits_root, resume=resume)
    assert len(result.history) == 2 and resume.failed


@pytest.mark.parametrize(
    ("part", "value", "message"),
    [
        ("optimizer", {}, "its optimizer state cannot be restored (KeyError)"),
        ("rng", {}, "its random states cannot be restored (KeyError)"),
        ("progress", {"history": [{}]}, "its history cannot be restored (TypeError)"),
    ],
)
def test_a_damaged_part_of_a_checkpoint_is_named(digits_root, tmp_path, part, value, message):
    path = tmp_path / "run.pt"
    with pytest.raises(Stop):
        stop = StopAt(2, 1)
        train_seeds(
            tiny_config("epochs=2"), data_dir=digits_root, observer=stop, resume=ResumeFile(path)
        )
    saved = torch.load(path, weights_only=True)
    torch.save(saved | {part: value}, path)
    with pytest.raises(DataError) as err:
        train_seeds(tiny_config("epochs=2"), data_dir=digits_root, resume=ResumeFile(path))
    assert str(err.value) == f"{path}: a damaged per-epoch checkpoint: {message}"
    torch.save(saved | {part: "x"}, path)
    with pytest.raises(DataError) as err:
        ResumeFile(path).config()  # what dse train --resume reads first
    assert str(err.value) == f"{path}: a damaged per-epoch checkpoint: its {part} is no mapping"


@pytest.mark.parametrize(("synced", "latest"), [("folder", (0, 2)), ("file", (0, 1))])
def test_ctrl_c_while_a_checkpoint_is_written_names_the_file_on_disk(
    digits_root, tmp_path, monkeypatch, synced, latest
):
    """Ctrl-C during epoch 2's write: once the file is renamed into place (while its folder is
    synced) the run stands after epoch 2; before the rename (while the temp file is synced), the
    file on disk is still epoch 1's. `latest()` says which, from the file itself."""
    import os

    from dse.train import resume

    real_fsync, calls = resume._fsync, []

    def interrupted(path, flags):  # Ctrl-C arrives during epoch 2's sync of the file or folder
        is_folder = bool(flags & getattr(os, "O_DIRECTORY", 0)) or os.path.isdir(path)
        calls.append(is_folder)
        if calls.count(is_folder) == 2 and is_folder == (synced == "folder"):
            raise KeyboardInterrupt
        real_fsync(path, flags)

    monkeypatch.setattr(resume, "_fsync", interrupted)
    file = ResumeFile(tmp_path / "run.pt", keep=True)
    with pytest.raises(KeyboardInterrupt):
        train_seeds(tiny_config("epochs=3"), data_dir=digits_root, resume=file)
    assert file.saved == (0, 1) and file.latest() == latest
    on_disk = read_state(tmp_path / "run.pt")
    assert (on_disk.seed_index, on_disk.epoch) == latest
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temp file left behind


def test_a_tagged_per_epoch_checkpoint_that_lacks_fields_names_them(tmp_path):
    torch.save({"format": "dse-resume-1", "config": {}, "epoch": 1}, tmp_path / "part.pt")
    with pytest.raises(DataError) as error:
        read_state(tmp_path / "part.pt")
    assert str(error.value) == (
        f"{tmp_path / 'part.pt'}: not a per-epoch checkpoint to resume from (its 'dse-resume-1' "
        "format tag, but no seed_index, finished, model, optimizer, rng, progress)"
    )
