"""Ctrl-C (SIGINT to the process group) and SIGTERM (to the runner, or to the whole job's
process group, as a scheduler sends it): one line, exit 128 + the signal, trials in flight
recorded FAIL as interrupted and queued again, the database closed; the same command then
resumes without waiting for stale trials."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.conftest import LONG_TRIAL_EPOCHS, dse_command, load_study, write_space

DB = Path("results/dse.db")


def running_trials() -> int:
    """RUNNING trials with a config (handed to a worker), read-only: the runner sets up alone."""
    if not DB.is_file():
        return 0
    query = (
        "SELECT COUNT(*) FROM trials JOIN trial_user_attributes USING (trial_id) "
        "WHERE state = 'RUNNING' AND key = 'config'"
    )
    try:
        with contextlib.closing(sqlite3.connect(f"file:{DB}?mode=ro", uri=True)) as db:
            return db.execute(query).fetchone()[0]
    except sqlite3.Error:  # tables not created yet
        return 0


def start_and_wait_for_two_training(space: Path, log: Path) -> subprocess.Popen:
    command, env = dse_command("run", "--space", str(space), "--gpus", "cpu", "--workers", "2")
    with log.open("w") as err:
        run = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        if running_trials() == 2:
            return run
        time.sleep(0.2)
    run.kill()
    pytest.fail(f"never saw two trials training: {log.read_text()[-2000:]}")


@pytest.mark.parametrize(
    ("number", "to_group"),
    [(signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGTERM, True)],
    ids=["int", "term", "term-group"],  # term-group: a batch scheduler ending the whole job
)
def test_a_signal_stops_the_run_cleanly_and_the_same_command_resumes(workdir, number, to_group):
    space = write_space(workdir, epochs=LONG_TRIAL_EPOCHS, lrs="[0.001]")  # 2 trials of seconds
    log = workdir / "run.stderr"
    run = start_and_wait_for_two_training(space, log)
    started = time.monotonic()
    if to_group:  # Ctrl-C at a terminal reaches the runner and its workers
        os.killpg(run.pid, number)
    else:
        os.kill(run.pid, number)
    run.wait(timeout=60)
    assert time.monotonic() - started < 15  # at once, not after the trials

    assert run.returncode == 128 + number
    lines = log.read_text().strip().splitlines()
    assert lines[-1] == (
        "interrupted: 0 complete, 2 stopped in flight; run the same command to resume"
    )
    assert "Traceback" not in log.read_text() and "Error closing" not in log.read_text()
    trials = load_study("sqlite:///results/dse.db", "tiny").get_trials()
    name = signal.Signals(number).name
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 2 and all(
        t.user_attrs["error"] == f"interrupted ({name})" for t in failed
    )
    assert sum(t.state == TrialState.WAITING for t in trials) == 2  # queued again
    assert not any(t.state == TrialState.RUNNING for t in trials)
    with contextlib.closing(sqlite3.connect(DB)) as db:  # closed cleanly: sound, no journal
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    command, env = dse_command("run", "--space", str(space), "--gpus", "cpu", "--workers", "2")
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    trials = load_study("sqlite:///results/dse.db", "tiny").get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2  # the queued retries ran
    assert not any("stale" in t.user_attrs.get("error", "") for t in trials)
