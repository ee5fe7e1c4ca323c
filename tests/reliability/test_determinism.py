"""Same TrialConfig, same CPU: the same numbers, in process, in a worker, and after export."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dse.cli import app
from dse.train.trainer import train
from tests.conftest import load_study, tiny_config, without_times, write_space

runner = CliRunner()


def test_same_config_twice_gives_identical_history(digits_root):
    config = tiny_config("epochs=2", "lr_policy.name=exp_decay", "lr_policy.decay_steps=3")
    first, second = train(config, data_dir=digits_root), train(config, data_dir=digits_root)
    assert without_times(first) == without_times(second)
    other_seed = train(config.with_overrides(["seed=1"]), data_dir=digits_root)
    assert without_times(other_seed)["history"] != without_times(first)["history"]


def test_export_then_train_reproduces_the_trials_accuracy(workdir):
    space = write_space(workdir)
    cpu = ["--gpus", "cpu", "--workers", "2"]  # `dse train` below runs on the CPU too
    run = runner.invoke(app, ["run", "--space", str(space), *cpu, "--quiet"])
    assert run.exit_code == 0, run.stderr
    exported = runner.invoke(app, ["export", "--pick", "most-accurate", "--out", "chosen.yaml"])
    assert exported.exit_code == 0, exported.stderr
    study = load_study("sqlite:///results/dse.db", "tiny")
    best = max(study.best_trials, key=lambda t: (t.values[1], -t.number))
    trained = runner.invoke(app, ["train", "--config", "chosen.yaml", "--format", "json"])
    assert trained.exit_code == 0, trained.stderr
    retrained = json.loads(trained.stdout.splitlines()[-1])
    recorded = best.user_attrs["metrics"]
    assert retrained["val_accuracy"] == recorded["val_accuracy"]
    assert retrained["test_accuracy"] == recorded["test_accuracy"]
    assert [h["train_loss"] for h in retrained["history"]] == [
        h["train_loss"] for h in best.user_attrs["history"]
    ]  # the worker (1 thread) and this process (2 threads) trained the same steps
