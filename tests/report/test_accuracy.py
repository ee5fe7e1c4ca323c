"""`dse report accuracy` from checkpoints and from a study whose space has the CNN baseline."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dse.cli import app
from dse.space import parse_space
from dse.train.trainer import train
from tests.conftest import each, invoke_json, tiny_config

runner = CliRunner()


def test_from_checkpoints(digits_root, tmp_path):
    caps = train(tiny_config(), data_dir=digits_root, checkpoint=tmp_path / "caps.pt")
    cnn = train(
        tiny_config("model.name=cnn_baseline", "model.fc_units=32"),
        data_dir=digits_root,
        checkpoint=tmp_path / "cnn.pt",
    )
    paths = [str(tmp_path / "caps.pt"), str(tmp_path / "cnn.pt")]
    _, rows = invoke_json(
        ["report", "accuracy", *each("--checkpoint", paths), "--out", str(tmp_path)]
    )
    assert [(r["model"], r["test_accuracy"]) for r in rows] == [
        ("capsnet", caps.test_accuracy),
        ("cnn_baseline", cnn.test_accuracy),
    ]
    page = (tmp_path / "accuracy.html").read_text()
    assert '"name":"capsnet"' in page and '"name":"cnn_baseline"' in page and "mnist" in page


def test_the_cnn_baseline_stands_in_a_search_space(digits_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DSE_DATA_DIR", str(digits_root))
    (tmp_path / "m.yaml").write_text(
        "name: models\nbase: {epochs: 1, eval_batch_size: 200,\n"
        "  dataset: {val_size: 100, test_subset: 100},\n"
        "  model: {conv_channels: 8, primary_types: 2}, batch_schedule: {batch_size: 50}}\n"
        "axes: {model.name: [capsnet, cnn_baseline]}\n"
    )
    space = parse_space(
        {"name": "x", "axes": {"model.name": ["capsnet", "cnn_baseline"]}}, "x.yaml"
    )
    assert space.config_for({"model.name": "cnn_baseline"}).model.fc_units == 1024
    assert runner.invoke(app, ["run", "--space", "m.yaml", "--quiet"]).exit_code == 0
    _, rows = invoke_json(["report", "accuracy", "--storage", "sqlite:///results/dse.db"])
    assert sorted(r["model"] for r in rows) == ["capsnet", "cnn_baseline"]
    assert invoke_json(["report", "accuracy"])[1] == rows  # the default database
    assert all(r["source"].startswith("models#") for r in rows)


def test_neither_checkpoints_nor_storage_reads_the_default_database(tmp_path, monkeypatch):
    """As `dse pareto` does: results/dse.db, or one line saying there is none (nothing written)."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["report", "accuracy"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --storage sqlite:///results/dse.db: no results database at results/dse.db "
        "(run `dse run` first)"
    ]
    assert not (tmp_path / "results").exists()


def test_a_study_without_complete_trials_or_not_made_by_dse_is_one_line(tmp_path, monkeypatch):
    import optuna

    monkeypatch.chdir(tmp_path)
    storage = "sqlite:///s.db"
    failed = optuna.create_study(storage=storage, study_name="failed", directions=["minimize"] * 2)
    failed.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    plain = optuna.create_study(storage=storage, study_name="plain", directions=["minimize"] * 2)
    plain.add_trial(optuna.trial.create_trial(values=[1.0, 0.5]))
    for study, line in (
        ("failed", "error: study 'failed' has no complete trial to report\n"),
        (
            "plain",
            "error: study 'plain' was not made by dse: trial 0 has no recorded config or "
            "accuracy\n",
        ),
    ):
        args = ["report", "accuracy", "--storage", storage, "--study", study, "--out", "out"]
        result = runner.invoke(app, args)
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", line)
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"test_accuracy": 0.9}, "no recorded val accuracy"),
        (
            {"test_accuracy": "high", "val_accuracy": 0.9},
            "no recorded test accuracy (found 'high')",
        ),
        ("nope", "no recorded test accuracy"),
    ],
)
def test_a_checkpoint_without_both_accuracies_is_one_line(tmp_path, result, message):
    import torch

    from dse.train.checkpoint import FORMAT

    path = tmp_path / "m.pt"
    payload = {"format": FORMAT, "config": tiny_config().to_dict(), "state_dict": {}}
    torch.save(payload | {"result": result}, path)
    args = ["report", "accuracy", "--checkpoint", str(path), "--out", str(tmp_path / "out")]
    out = runner.invoke(app, args)
    assert out.exit_code == 2 and out.stderr == f"error: {path}: the checkpoint has {message}\n"
    assert not (tmp_path / "out").exists()


def test_a_study_reports_its_best_trial_that_meets_its_constraints(tmp_path, monkeypatch):
    # it took the best validation accuracy of any complete trial, one that missed the study's
    # constraints too; a study where none meets them is one line
    import optuna

    monkeypatch.chdir(tmp_path)
    storage = "sqlite:///s.db"
    config = tiny_config().to_dict()
    for name, excesses in (("some", (0.1, -0.1)), ("none", (0.1, 0.2))):
        study = optuna.create_study(storage=storage, study_name=name, directions=["maximize"])
        for number, excess in enumerate(excesses):
            metrics = {"val_accuracy": 0.9 - number / 10, "test_accuracy": 0.8 - number / 10}
            trial = optuna.trial.create_trial(
                values=[metrics["val_accuracy"]],
                constraints={"train_time_s <= 60": excess},
                user_attrs={"config": config, "metrics": metrics},
            )
            study.add_trial(trial)
    _, rows = invoke_json(["report", "accuracy", "--storage", storage, "--study", "some"])
    assert [(r["source"], r["val_accuracy"]) for r in rows] == [("some#1", 0.8)]
    args = ["report", "accuracy", "--storage", storage, "--study", "none", "--out", "out"]
    result = runner.invoke(app, args)
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        "error: study 'none' has no complete trial that meets train_time_s <= 60 to report\n",
    )
    assert not (tmp_path / "out").exists()
