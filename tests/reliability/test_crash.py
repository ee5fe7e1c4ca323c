"""kill -9 of the runner, and of one worker, mid-study: the same command again completes the
planned trials; no complete trial is lost or run twice; no trial is left RUNNING."""

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

STORAGE = "sqlite:///results/dse.db"
DB = Path("results/dse.db")


def _run_command(space: Path) -> tuple[list[str], dict[str, str]]:
    """`dse run` on 2 CPU workers as a separate process, and its environment."""
    return dse_command("run", "--space", str(space), "--gpus", "cpu", "--workers", "2", "-q")


def _start(space: Path, log: Path) -> subprocess.Popen:
    command, env = _run_command(space)
    with log.open("w") as err:  # a file: a pipe nobody reads could fill and stall the run
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)


def _states() -> list[str]:
    """Trial states as stored, read-only: watching must not create or lock the database (an
    optuna.load_study here would create the tables itself, racing the runner's own setup)."""
    if not DB.is_file():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{DB}?mode=ro", uri=True)) as db:
            return [state for (state,) in db.execute("SELECT state FROM trials ORDER BY number")]
    except sqlite3.Error:  # the runner is still creating the tables
        return []


def _worker_pids(runner_pid: int) -> list[int]:
    """The runner's trial workers: spawned children, not multiprocessing's resource tracker.

    Found by each process's parent in /proc/PID/stat, which holds for children of any thread
    (the /proc/PID/task/TID/children list is only the one thread's, and racy by its own docs).
    """
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):  # exited while we looked
            continue
        if parent == runner_pid and b"spawn_main" in cmdline:
            pids.append(int(stat.parent.name))
    return sorted(pids)


def _wait_for(run: subprocess.Popen, log: Path, what: str, ready) -> tuple[list[str], list[int]]:
    """Poll until ready(states, workers); fail with what was seen if the run ends or 180 s pass."""
    deadline = time.monotonic() + 180
    states: list[str] = []
    workers: list[int] = []
    while time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.3)
        states, workers = _states(), _worker_pids(run.pid)
        if ready(states, workers):
            return states, workers
    run.kill()
    run.wait(timeout=10)
    pytest.fail(
        f"never saw {what}: run exit {run.returncode}, last states {states}, workers {workers}, "
        f"stderr: {log.read_text()[-2000:]}"
    )


def test_kill_9_of_the_runner_then_the_same_command_completes(workdir):
    """Kill the runner (and so its workers) mid-study; rerun: planned trials, none twice."""
    space = write_space(workdir, epochs=25, lrs="[0.001, 0.002, 0.003]")
    log = workdir / "first.stderr"
    first = _start(space, log)
    _wait_for(
        first,
        log,
        "one complete trial and two running",
        lambda states, _: states.count("COMPLETE") >= 1 and states.count("RUNNING") >= 2,
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    killed = load_study(STORAGE, "tiny").get_trials()
    assert any(t.state == TrialState.RUNNING for t in killed)
    complete_before = {t.number: t.values for t in killed if t.state == TrialState.COMPLETE}

    command, env = _run_command(space)
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    trials = load_study(STORAGE, "tiny").get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6  # the planned grid
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 6  # none twice
    assert {t.number: t.values for t in complete if t.number in complete_before} == (
        complete_before
    )  # nothing complete was lost or redone
    assert not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    # a trial asked past the budget while a stale trial's retry is being queued would be
    # withdrawn: not trained, not counted (recorder.withdrawn); every other FAIL is stale
    withdrawn = [t for t in trials if t.user_attrs.get("withdrawn")]
    assert all(t.state == TrialState.FAIL and "config" not in t.user_attrs for t in withdrawn)
    stale = [t for t in trials if t.state == TrialState.FAIL and t not in withdrawn]
    assert stale and all(  # failed by heartbeat, and says so
        t.user_attrs["error"].startswith("stale: no heartbeat for") and t.user_attrs["retried"]
        for t in stale
    ), [t.user_attrs for t in stale]
    for t in stale:  # it ran until the kill, not until the next runner marked it
        marked = (t.datetime_complete - t.datetime_start).total_seconds()
        assert 0 <= t.user_attrs["ran_s"] <= marked - 5, (t.user_attrs["ran_s"], marked)
        if "resume_key" not in t.user_attrs:  # asked, and the kill came before a worker had
            assert "config" not in t.user_attrs and not t.user_attrs.get("curve")  # it: no run
            continue
        # its retry resumed from its checkpoint: the epochs it reported, or one more (written,
        # and killed before the runner heard of it)
        key = t.user_attrs["resume_key"]
        retry = next(c for c in complete if c.user_attrs["resume_key"] == key)
        reported = len(t.user_attrs.get("curve", []))
        resumed = retry.user_attrs.get("resumed_from_epoch", 0)
        if reported < 25:
            assert reported <= resumed <= reported + 1
        else:  # killed after its last epoch, before the runner heard it complete: the run
            # removes its checkpoint on completing, so the retry may train afresh
            assert resumed in (0, 25)
        assert 0 <= retry.user_attrs["lost_train_s"] == t.user_attrs["lost_train_s"]
        assert len(retry.user_attrs["history"]) == 25


def test_a_killed_worker_is_replaced_and_its_trial_retried(workdir):
    space = write_space(workdir, epochs=LONG_TRIAL_EPOCHS, lrs="[0.001]")
    log = workdir / "run.stderr"
    run = _start(space, log)
    _, workers = _wait_for(
        run,
        log,
        "both workers training",
        lambda states, workers: states.count("RUNNING") == 2 and len(workers) == 2,
    )
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    run.wait(timeout=300)
    assert run.returncode == 0, log.read_text()
    trials = load_study(STORAGE, "tiny").get_trials()
    died = [t for t in trials if "worker died" in t.user_attrs.get("error", "")]
    assert (
        len(died) == 1
        and died[0].user_attrs["retried"]
        and "exit code -9" in died[0].user_attrs["error"]
    )
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["model.routing_iterations"] for t in complete) == [1, 2]
    retry = next(t for t in complete if t.user_attrs.get("retry_of") is not None)
    assert retry.user_attrs["retry_of"] == died[0].number and retry.params == died[0].params
    assert not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
