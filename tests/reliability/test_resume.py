"""Trials and `dse train` resume from their last complete epoch: a worker killed in the last
epoch of a trial, and `dse train` stopped by Ctrl-C (or SIGTERM), end with the numbers of a
run never stopped; checkpoints dse made are removed when a run completes, unless kept."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from dse.cli import app
from dse.train.faults import FAULT_KILL_ENV
from tests.conftest import dse_command, load_study, write_space

runner = CliRunner()
RUN = ["--gpus", "cpu", "--workers", "2", "--quiet"]


def _clockless(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "epoch_time_s"} for record in history]


def _checkpoints(folder: Path = Path("results/checkpoints")) -> list[Path]:
    return sorted(folder.rglob("*.pt")) if folder.exists() else []


def test_a_worker_killed_in_the_last_epoch_resumes_there_and_ends_as_if_never_killed(
    workdir, monkeypatch
):
    space = write_space(workdir, epochs=8, lrs="[0.001]")  # 2 points, 6 steps an epoch
    reference = runner.invoke(
        app, ["run", "--space", str(space), *RUN, "--storage", "sqlite:///results/ref.db"]
    )
    assert reference.exit_code == 0, reference.stderr
    monkeypatch.setenv(FAULT_KILL_ENV, "8:3")  # inherited by the workers: both die once
    faulty = runner.invoke(app, ["run", "--space", str(space), *RUN])
    assert faulty.exit_code == 0, faulty.stderr

    expected = {
        tuple(sorted(t.params.items())): t
        for t in load_study("sqlite:///results/ref.db", "tiny").get_trials()
    }
    trials = load_study("sqlite:///results/dse.db", "tiny").get_trials()
    died = [t for t in trials if t.state == TrialState.FAIL]
    assert len(died) == 2 and all("exit code -9" in t.user_attrs["error"] for t in died)
    assert all(len(t.user_attrs["curve"]) == 7 for t in died)  # 7 epochs reported, then killed
    retries = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.user_attrs["retry_of"] for t in retries) == sorted(t.number for t in died)
    for retry in retries:
        attrs, same = retry.user_attrs, expected[tuple(sorted(retry.params.items()))].user_attrs
        assert attrs["resumed_from_epoch"] == 7  # restored 7 complete epochs, trained the 8th
        assert _clockless(attrs["history"]) == _clockless(same["history"])
        for metric in ("val_accuracy", "test_accuracy", "n_params", "train_gflops"):
            assert attrs["metrics"][metric] == same["metrics"][metric], metric
        # training time: the 7 restored epochs' and the 8th, not the lost part of the 8th
        epochs = [record["epoch_time_s"] for record in attrs["history"]]
        assert attrs["metrics"]["train_time_s"] == pytest.approx(sum(epochs))
        failed = next(t for t in died if t.number == attrs["retry_of"])
        assert epochs[:7] == [point["epoch_time_s"] for point in failed.user_attrs["curve"]]
        assert 0 < attrs["lost_train_s"] == failed.user_attrs["lost_train_s"] < 60
        assert len(attrs["curve"]) == 8  # the restored epochs are reported again
    assert _checkpoints() == []  # both runs' checkpoints removed once their trials completed


def test_kept_checkpoints_stay_and_dse_train_resumes_a_trials_checkpoint(workdir):
    space = write_space(workdir, epochs=2, lrs="[0.001]")
    result = runner.invoke(app, ["run", "--space", str(space), *RUN, "--keep-checkpoints"])
    assert result.exit_code == 0, result.stderr
    kept = _checkpoints()
    trials = load_study("sqlite:///results/dse.db", "tiny").get_trials()
    uid = re.fullmatch(r"tiny-([0-9a-f]{8})", kept[0].parent.name).group(1)
    assert kept == [Path(f"results/checkpoints/tiny-{uid}/trial-{t.number}.pt") for t in trials]
    # A trial's checkpoint is a `dse train` checkpoint too: all epochs done, same numbers.
    trained = runner.invoke(app, ["train", "--resume", str(kept[0]), "--format", "json"])
    assert trained.exit_code == 0, trained.stderr
    again = json.loads(trained.stdout.splitlines()[-1])
    recorded = trials[0].user_attrs
    assert again["resumed_from_epoch"] == 2
    assert again["test_accuracy"] == recorded["metrics"]["test_accuracy"]
    assert again["history"] == recorded["history"]
    assert "already complete (2 of 2 epochs): nothing trained" in trained.stderr
    # The file a user resumes from is theirs: kept once the run completes.
    assert _checkpoints() == kept


# Enough epochs that Ctrl-C lands mid-run: an epoch of this tiny model takes tens of ms, and
# the signal goes within 20 ms of the first epoch's checkpoint (60 epochs: 49 s a test, 2 EPYC
# cores; 20: 23 s).
EPOCHS = 20
TINY = [
    "--preset", "baseline", "--set", f"epochs={EPOCHS}", "--set", "dataset.val_size=100",
    "--set", "model.conv_channels=8", "--set", "model.primary_types=2",
    "--set", "model.primary_dim=4", "--set", "model.class_dim=4",
    "--set", "batch_schedule.batch_size=50", "--threads", "1",
]  # fmt: skip
CHECKPOINT = Path("results/checkpoints/train-baseline.pt")


def _train(*args: str) -> dict:
    command, env = dse_command("train", *args, "--format", "json")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_ctrl_c_in_dse_train_leaves_a_checkpoint_that_resumes_to_the_same_numbers(workdir):
    reference = _train(*TINY)
    assert not CHECKPOINT.exists()  # removed once the run completed

    command, env = dse_command("train", *TINY, "--format", "json")
    log = workdir / "train.stderr"
    with log.open("w") as err:  # its own session: Ctrl-C reaches it alone, from Python
        run = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            # as from a terminal: a suite started in the background (`cmd &`, nohup) ignores
            # SIGINT, the child would inherit that, and Python leaves an ignored SIGINT ignored
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    deadline = time.monotonic() + 120
    while not CHECKPOINT.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGINT)  # as Ctrl-C at a terminal: the whole process group
    run.wait(timeout=60)
    stderr = log.read_text()
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr
    line = stderr.strip().splitlines()[-1]
    match = re.fullmatch(
        rf"interrupted after epoch (\d+) of {EPOCHS}; resume with: "
        r"dse train --resume results/checkpoints/train-baseline.pt --threads 1",
        line,
    )
    assert match, line
    done = int(match.group(1))
    assert 1 <= done < EPOCHS and CHECKPOINT.exists()

    resumed = _train("--resume", str(CHECKPOINT), "--threads", "1")
    assert resumed["resumed_from_epoch"] == done
    assert _clockless(resumed["history"]) == _clockless(reference["history"])
    assert (resumed["val_accuracy"], resumed["test_accuracy"]) == (
        reference["val_accuracy"],
        reference["test_accuracy"],
    )
    assert CHECKPOINT.exists()  # the file the user named: never removed by dse


def test_sigterm_to_dse_train_is_one_line_exit_143_and_keeps_the_checkpoint(workdir):
    """As a scheduler ends a job: not a silent death, but Ctrl-C's line and its checkpoint."""
    command, env = dse_command("train", *TINY, "--format", "json")
    log = workdir / "train.stderr"
    with log.open("w") as err:
        run = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
    deadline = time.monotonic() + 120
    while not CHECKPOINT.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGTERM)
    run.wait(timeout=60)
    lines = log.read_text().strip().splitlines()
    assert run.returncode == 128 + signal.SIGTERM, lines
    assert len(lines) == 1 and re.fullmatch(
        rf"interrupted after epoch \d+ of {EPOCHS}; resume with: "
        r"dse train --resume results/checkpoints/train-baseline.pt --threads 1",
        lines[0],
    ), lines
    assert CHECKPOINT.exists()


def test_resume_refuses_a_config_and_a_file_that_is_no_checkpoint(workdir):
    Path("best.pt").write_bytes(b"junk")
    result = runner.invoke(app, ["train", "--resume", "best.pt", "--preset", "baseline"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --resume best.pt: goes on with the checkpoint's configuration, in its file "
        "(no --preset)\n"
    )
    result = runner.invoke(app, ["train", "--resume", "best.pt"])
    assert result.exit_code == 2 and "best.pt: not a dse checkpoint" in result.stderr
