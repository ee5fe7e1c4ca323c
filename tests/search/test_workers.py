"""Local worker processes: a worker that dies says why."""

from __future__ import annotations

import subprocess

from optuna.trial import TrialState
from typer.testing import CliRunner

from dse.cli import app
from dse.train.faults import FAULT_WORKER_START_ENV
from tests.conftest import dse_command, load_study, write_space

runner = CliRunner()


def test_a_worker_that_cannot_start_ends_the_run_in_one_line_naming_its_exception(
    workdir, monkeypatch
):
    """It was restarted for each trial and its retry (every 2-3 s, a 50-trial study for
    minutes), each trial then failed for good; now the run ends after 3 such deaths with the
    exception, and the trials, which never ran, are queued again: once the cause is fixed,
    the same command runs them."""
    monkeypatch.setenv(FAULT_WORKER_START_ENV, "cannot load")  # the spawned workers inherit it
    space = write_space(workdir, lrs="[0.001, 0.002, 0.003]")  # 6 points
    cpu = ["--gpus", "cpu", "--workers", "1", "--quiet"]
    run = runner.invoke(app, ["run", "--space", str(space), *cpu])
    cause = f"exit code 1: RuntimeError: cannot load ({FAULT_WORKER_START_ENV})"
    assert (run.exit_code, run.stdout) == (1, "")
    assert run.stderr.splitlines()[-1] == (
        f"error: the local workers cannot start: 3 died in a row before taking a trial, the "
        f"last on cpu#0 ({cause}); the run stopped and its trials are queued again: fix the "
        "cause, then run the same command"
    )
    trials = load_study("sqlite:///results/dse.db", "tiny").get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 3
    for t in failed:  # each one's error names the exception
        assert t.user_attrs["error"] == f"not started: worker died at start ({cause}) on cpu#0"
    table = runner.invoke(app, ["trials", "--columns", "number,error", "--format", "csv"])
    assert table.exit_code == 0 and cause in table.stdout
    assert sum(t.state == TrialState.WAITING for t in trials) == 6  # every point, none lost

    monkeypatch.delenv(FAULT_WORKER_START_ENV)
    again = runner.invoke(app, ["run", "--space", str(space), *cpu, "--format", "json"])
    assert again.exit_code == 0, again.stderr
    assert "6 complete, 0 failed of 6 planned" in again.stderr


def test_a_worker_that_cannot_start_prints_no_traceback_unless_debugging(workdir):
    """Each worker that died at start printed its traceback into the run's output (3 copies
    before the run stopped) above the one line that already names the exception; DSE_DEBUG=1
    keeps them, as it keeps a command error's traceback."""
    space = write_space(workdir)
    command, env = dse_command("run", "--space", str(space), "--workers", "1", "--quiet")
    env[FAULT_WORKER_START_ENV] = "cannot load"
    cause = f"RuntimeError: cannot load ({FAULT_WORKER_START_ENV})"
    quiet = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 1
    assert "Traceback" not in quiet.stderr and cause in quiet.stderr.splitlines()[-1]
    env["DSE_DEBUG"] = "1"
    debugging = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert debugging.returncode == 1
    each = "Process dse-worker-cpu#0:\nTraceback (most recent call last)"
    # 3 died in a row; one more may start before the run stops it
    assert debugging.stderr.count(each) >= 3
    assert debugging.stderr.count(f"\n{cause}\n") >= 3
