"""Local worker processes: a worker that dies says why."""

from __future__ import annotations

from optuna.trial import TrialState
from typer.testing import CliRunner

from dse.cli import app
from dse.train.faults import FAULT_WORKER_START_ENV
from tests.conftest import load_study, write_space

runner = CliRunner()


def test_a_worker_that_dies_at_start_records_its_exception_in_the_trial_s_error(
    workdir, monkeypatch
):
    """Its error said only `worker died (exit code 1)`; now the exception that ended it too,
    in the trial's error and in `dse trials`."""
    monkeypatch.setenv(FAULT_WORKER_START_ENV, "cannot load")  # the spawned workers inherit it
    space = write_space(workdir, lrs="[0.001]")
    cpu = ["--gpus", "cpu", "--n-trials", "1", "--quiet"]
    run = runner.invoke(app, ["run", "--space", str(space), *cpu])
    assert run.exit_code == 1, run.stderr  # every trial it started failed
    cause = f"RuntimeError: cannot load ({FAULT_WORKER_START_ENV})"
    failed = load_study("sqlite:///results/dse.db", "tiny").get_trials()
    assert [t.state for t in failed] == [TrialState.FAIL] * 2  # the trial and its retry
    for t in failed:
        assert t.user_attrs["error"] == f"worker died (exit code 1: {cause}) on cpu#0"
    trials = runner.invoke(app, ["trials", "--columns", "number,error", "--format", "csv"])
    assert trials.exit_code == 0 and cause in trials.stdout
