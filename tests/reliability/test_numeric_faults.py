"""Numeric faults end as FAILED trials with their reason; the study goes on.

Out-of-memory is produced by the trainer's fault-injection hook DSE_FAULT_OOM_ABOVE_BATCH
(see dse/train/trainer.py): the trainer raises torch.OutOfMemoryError itself, as a device
holding at most that batch size would; nothing of the training is replaced.
"""

from __future__ import annotations

import re

import pytest
import torch
from optuna.trial import TrialState
from typer.testing import CliRunner

from dse.cli import app
from dse.errors import NonFiniteLossError
from dse.train.faults import FAULT_OOM_ENV
from dse.train.trainer import train
from tests.conftest import load_study, tiny_config, write_space

runner = CliRunner()
STORAGE = "sqlite:///results/dse.db"


def test_diverging_run_names_epoch_and_step(digits_root):
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at epoch 1, step \d+"):
        train(tiny_config("optimizer.lr=1e10"), data_dir=digits_root)


def test_diverging_trial_is_recorded_failed_and_the_study_goes_on(workdir):
    space = write_space(workdir, lrs="[0.001, 1.0e10]")
    result = runner.invoke(app, ["run", "--space", str(space), "--quiet"])
    assert result.exit_code == 0, result.stderr
    trials = load_study(STORAGE, "tiny").get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 2 and all(t.params["optimizer.lr"] == 1e10 for t in failed)
    steps = 300 // 50  # 400 images - 100 for validation, batch 50
    for t in failed:
        found = re.fullmatch(
            r"NonFiniteLossError: non-finite loss at epoch 1, step (\d+)", t.user_attrs["error"]
        )
        assert found and 1 <= int(found.group(1)) <= steps, t.user_attrs["error"]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert "2 failed" in result.stderr
    assert "every trial" not in result.stderr  # some failed, some completed: exit 0


def test_the_oom_hook_raises_torchs_error_type(digits_root, monkeypatch):
    monkeypatch.setenv(FAULT_OOM_ENV, "40")
    with pytest.raises(torch.OutOfMemoryError, match="batch of 50 at epoch 1, step 1"):
        train(tiny_config(), data_dir=digits_root)
    monkeypatch.setenv(FAULT_OOM_ENV, "50")  # the batch fits: trains normally
    assert train(tiny_config(), data_dir=digits_root).history[0].batch_size == 50


def _oom_space(workdir):
    return write_space(workdir, lrs="[0.001]")  # 2 trials (routing 1, 2), batch 50


def test_out_of_memory_is_recorded_failed_with_its_reason(workdir, monkeypatch):
    monkeypatch.setenv(FAULT_OOM_ENV, "30")  # inherited by the spawned workers
    result = runner.invoke(app, ["run", "--space", str(_oom_space(workdir)), "--quiet"])
    assert result.exit_code == 1, result.stderr  # every trial it started failed
    trials = load_study(STORAGE, "tiny").get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    for t in trials:
        assert t.user_attrs["error"] == (
            "out of memory: simulated out of memory (DSE_FAULT_OOM_ABOVE_BATCH=30): "
            "batch of 50 at epoch 1, step 1"
        )
        assert "retried" not in t.user_attrs
    assert "0 complete, 2 failed of 2 planned" in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "error: every trial this run started failed (2 of 2); the first: trial 0: out of "
        "memory: simulated out of memory (DSE_FAULT_OOM_ABOVE_BATCH=30): batch of 50 at epoch 1, "
        "step 1; each one's error: dse trials --study tiny --columns number,error"
    )


def test_retry_oom_reruns_once_at_half_the_batch_linked_to_the_original(workdir, monkeypatch):
    monkeypatch.setenv(FAULT_OOM_ENV, "30")
    args = ["run", "--space", str(_oom_space(workdir)), "--retry-oom", "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    trials = load_study(STORAGE, "tiny").get_trials()
    originals = [t for t in trials if t.state == TrialState.FAIL]
    retries = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(originals) == 2 and len(retries) == 2 and len(trials) == 4
    for original in originals:
        assert original.user_attrs["error"].startswith("out of memory: ")
        assert original.user_attrs["retried"] is True
        assert original.user_attrs["config"]["batch_schedule"]["batch_size"] == 50
        retry = next(t for t in retries if t.user_attrs["retry_of"] == original.number)
        assert retry.params == original.params
        assert retry.user_attrs["retry_reason"] == "out of memory"
        assert retry.user_attrs["config"]["batch_schedule"]["batch_size"] == 25
        assert [h["batch_size"] for h in retry.user_attrs["history"]] == [25]
    assert "2 complete, 0 failed of 2 planned" in result.stderr


def test_retry_oom_retries_only_once(workdir, monkeypatch):
    monkeypatch.setenv(FAULT_OOM_ENV, "10")  # half of 50 does not fit either
    args = ["run", "--space", str(_oom_space(workdir)), "--retry-oom", "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.stderr  # the retries failed too
    assert "every trial this run started failed (4 of 4)" in result.stderr.splitlines()[-1]
    trials = load_study(STORAGE, "tiny").get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * 4
    retries = [t for t in trials if "retry_of" in t.user_attrs]
    assert len(retries) == 2 and not any(t.user_attrs.get("retried") for t in retries)
    assert all("batch of 25" in t.user_attrs["error"] for t in retries)
    assert "0 complete, 2 failed of 2 planned" in result.stderr


def test_half_batch_halves_every_phase_of_a_schedule():
    fixed = tiny_config("batch_schedule.batch_size=1").with_half_batch()
    assert fixed.batch_schedule.batch_size == 1  # never below 1
    ada = tiny_config(
        "batch_schedule.name=adabatch",
        "batch_schedule.batch_size=16",
        "batch_schedule.milestones=[[2, 128], [4, 256]]",
        "lr_policy.name=warm_adabatch",
    ).with_half_batch()
    assert ada.batch_schedule.batch_size == 8
    assert ada.batch_schedule.milestones == ((2, 64), (4, 128))
    assert ada.lr_policy.name == "warm_adabatch"  # restarts stay on the same epochs
