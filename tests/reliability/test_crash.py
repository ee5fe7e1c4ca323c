"""kill -9 of the runner, and of one worker, mid-study: the same command again completes the
planned trials; no complete trial is lost or run twice; no trial is left RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.conftest import dse_command, load_study, write_space

STORAGE = "sqlite:///results/dse.db"


def _run_command(space: Path) -> tuple[list[str], dict[str, str]]:
    """`dse run` on 2 CPU workers as a separate process, and its environment."""
    return dse_command("run", "--space", str(space), "--workers", "2", "-q")


def _states() -> list[TrialState]:
    try:
        return [t.state for t in load_study(STORAGE, "tiny").get_trials()]
    except Exception:  # the database or the study does not exist yet
        return []


def test_kill_9_of_the_runner_then_the_same_command_completes(workdir):
    """Kill the runner (and so its workers) mid-study; rerun: planned trials, none twice."""
    space = write_space(workdir, epochs=25, lrs="[0.001, 0.002, 0.003]")
    command, env = _run_command(space)
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for one complete trial and two running
        time.sleep(0.5)
        states = _states()
        if states.count(TrialState.COMPLETE) >= 1 and states.count(TrialState.RUNNING) >= 2:
            break
    else:
        first.kill()
        pytest.fail("the first run never had a complete and two running trials")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    killed = load_study(STORAGE, "tiny").get_trials()
    assert any(t.state == TrialState.RUNNING for t in killed)
    complete_before = {t.number: t.values for t in killed if t.state == TrialState.COMPLETE}

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
    stale = [t for t in trials if t.state == TrialState.FAIL]
    assert stale and all("error" not in t.user_attrs for t in stale)  # failed by heartbeat


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


def test_a_killed_worker_is_replaced_and_its_trial_retried(workdir):
    space = write_space(workdir, epochs=40, lrs="[0.001]")
    command, env = _run_command(space)
    with (workdir / "run.stderr").open("w") as log:  # a file: a pipe nobody reads could fill
        run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 180
    victim, states, workers = None, [], []
    while time.monotonic() < deadline and victim is None and run.poll() is None:
        time.sleep(0.3)
        states, workers = _states(), _worker_pids(run.pid)
        if states.count(TrialState.RUNNING) == 2 and len(workers) == 2:
            victim = workers[0]  # both workers are training
    if victim is None:
        run.kill()
        run.wait(timeout=10)
        pytest.fail(
            f"never saw both workers training: run exit {run.returncode}, last states "
            f"{[s.name for s in states]}, workers {workers}, stderr: "
            f"{(workdir / 'run.stderr').read_text()[-2000:]}"
        )
    os.kill(victim, signal.SIGKILL)
    run.wait(timeout=300)
    assert run.returncode == 0, (workdir / "run.stderr").read_text()
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
