"""dse calibrate: the noise statistics, the file dse run stores, dse pareto's warning."""

from __future__ import annotations

import json
import warnings

import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

from dse.cli import app
from dse.errors import ConfigError
from dse.measure.calibrate import (
    Calibration,
    calibrated_threads,
    coefficient_of_variation,
    load_calibration,
    noise_ties,
)
from tests.conftest import each, last_json

runner = CliRunner()


def _result(epoch_times: list[float], accuracy: float) -> dict:
    return {
        "train_time_s": sum(epoch_times),
        "val_accuracy": accuracy,
        "history": [{"epoch_time_s": t} for t in epoch_times],
    }


def test_cv_and_accuracy_spread_are_computed_from_the_runs():
    runs = [
        _result([9.0, 2.0, 2.2], 0.97),
        _result([8.0, 1.8, 2.0], 0.98),
        _result([7.0, 2.0, 2.0], 0.99),
    ]
    cal = Calibration.from_runs("c", "cpu", [0, 1, 2], runs)
    counted = [2.0, 2.2, 1.8, 2.0, 2.0, 2.0]  # each run's first epoch left out
    assert cal.epoch_time_cv == pytest.approx(np.std(counted, ddof=1) / np.mean(counted))
    assert cal.epoch_time_mean_s == pytest.approx(2.0)
    totals = [13.2, 11.8, 11.0]
    assert cal.train_time_cv == pytest.approx(np.std(totals, ddof=1) / np.mean(totals))
    assert cal.val_accuracy_std == pytest.approx(0.01)
    assert cal.val_accuracy_spread == pytest.approx(0.02)
    assert coefficient_of_variation([5.0]) == 0.0
    assert coefficient_of_variation([1.0, 3.0]) == pytest.approx(np.sqrt(2) / 2)


def test_noise_ties_name_neighbours_within_the_noise_only():
    calibration = {"train_time_cv": 0.05, "val_accuracy_std": 0.002}
    rows = [
        {"number": 1, "train_time_s": 100.0, "val_accuracy": 0.970},
        {"number": 2, "train_time_s": 103.0, "val_accuracy": 0.971},  # within both: a tie
        {"number": 3, "train_time_s": 150.0, "val_accuracy": 0.972},  # 31% slower: real
        {"number": 4, "train_time_s": 152.0, "val_accuracy": 0.990},  # 1.8 points: real
    ]
    ties = noise_ties(rows, ["train_time_s", "val_accuracy"], calibration)
    assert [(a, b) for a, b, _ in ties] == [(1, 2)]
    assert "train_time_s 2.9% < CV 5.0%" in ties[0][2]
    assert noise_ties(rows, ["train_time_s", "n_params"], calibration) == []  # n_params: no noise


def test_calibrate_then_run_then_pareto_warns(workdir):
    tiny = [
        "epochs=2", "dataset.val_size=100", "dataset.test_subset=100", "model.conv_channels=8",
        "model.primary_types=2", "model.primary_dim=4", "model.class_dim=4",
        "batch_schedule.batch_size=50", "eval_batch_size=100",
    ]  # fmt: skip
    args = ["calibrate", "--preset", "baseline", *each("--set", tiny), "--runs", "2"]
    result = runner.invoke(app, [*args, "--threads", "1", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    cal = last_json(result)
    assert cal["runs"] == 2 and cal["seeds"] == [0, 1] and len(cal["val_accuracy"]) == 2
    assert cal["threads"] == 1 and cal["bf16"]  # what the times depend on besides the config
    assert cal["epoch_time_cv"] >= 0 and cal["train_time_cv"] >= 0
    assert json.loads((workdir / "results" / "calibration.json").read_text()) == cal

    # A calibration that calls everything noise: the two-point front must be flagged.
    cal.update(train_time_cv=10.0, val_accuracy_std=1.0)
    (workdir / "results" / "calibration.json").write_text(json.dumps(cal))
    space = workdir / "two.yaml"
    space.write_text(
        "name: two\nbase: {epochs: 1, eval_batch_size: 100, dataset: {val_size: 100, "
        "test_subset: 100}, model: {conv_channels: 8, primary_types: 2, primary_dim: 4, "
        "class_dim: 4}, batch_schedule: {batch_size: 50}}\n"
        "axes:\n  model.routing_iterations: [1, 3]\n"
        "objectives: {train_time_s: minimize, val_accuracy: maximize}\n"
    )
    storage = f"sqlite:///{workdir}/r.db"
    run = runner.invoke(
        app, ["run", "--space", str(space), "--storage", storage, "--workers", "1", "-q"]
    )
    assert run.exit_code == 0, run.stderr
    study = optuna.load_study(study_name="two", storage=storage)
    assert study.user_attrs["calibration"]["train_time_cv"] == 10.0


def test_pareto_warns_about_front_members_within_the_noise(tmp_path):
    storage = f"sqlite:///{tmp_path}/r.db"
    study = optuna.create_study(
        storage=storage, study_name="s", directions=["minimize", "maximize"]
    )
    with warnings.catch_warnings():  # experimental in optuna
        warnings.simplefilter("ignore")
        study.set_metric_names(["train_time_s", "val_accuracy"])
    for values in ([100.0, 0.970], [103.0, 0.971], [200.0, 0.990]):
        study.add_trial(optuna.trial.create_trial(values=values))
    result = runner.invoke(app, ["pareto", "--storage", storage, "--format", "json"])
    assert result.exit_code == 0 and "noise" not in result.stderr  # no calibration stored
    study.set_user_attr(
        "calibration", {"train_time_cv": 0.05, "val_accuracy_std": 0.002, "device": "cpu"}
    )
    result = runner.invoke(app, ["pareto", "--storage", storage, "--format", "json"])
    assert result.exit_code == 0 and len(last_json(result)) == 3
    flagged = [line for line in result.stderr.splitlines() if line.startswith("warning")]
    assert flagged == [
        "warning: front members 0 and 1 differ by less than the measured noise (train_time_s "
        "2.9% < CV 5.0%; val_accuracy 0.10 < std 0.20 points; calibration on cpu)"
    ]


def _timed_study(storage: str, metric_names: list[str], trial_threads: int) -> optuna.Study:
    """Two front members within any noise, trained with `trial_threads` torch threads."""
    study = optuna.create_study(
        storage=storage, study_name="s", directions=["minimize", "maximize"]
    )
    with warnings.catch_warnings():  # experimental in optuna
        warnings.simplefilter("ignore")
        study.set_metric_names(metric_names)
    for values in ([100.0, 0.970], [103.0, 0.971]):
        attrs = {"environment": {"threads": trial_threads}}
        study.add_trial(optuna.trial.create_trial(values=values, user_attrs=attrs))
    return study


NOISE = {"train_time_cv": 0.05, "val_accuracy_std": 0.002, "device": "cpu"}
OLDER = (
    "note: the calibration on cpu does not say how many torch threads it timed (written by "
    "an older dse); the front's trials trained with 2: rerun `dse calibrate` to judge their "
    "times by a CV of theirs"
)


@pytest.mark.parametrize(
    ("calibrated", "lines"),
    [
        (2, ["warning: front members 0 and 1 differ by less than the measured noise "
             "(train_time_s 2.9% < CV 5.0%; val_accuracy 0.10 < std 0.20 points; "
             "calibration on cpu, 2 torch thread(s))"]),
        (1, ["warning: front members 0 and 1 differ by less than the measured noise "
             "(train_time_s 2.9% < CV 5.0%; val_accuracy 0.10 < std 0.20 points; "
             "calibration on cpu, 1 torch thread(s))",
             "note: the calibration timed 1 torch thread(s), the front's trials trained with 2: "
             "its time CV is another thread count's noise"]),
        (None, [  # a calibration written before dse recorded threads: read, with one note
            "warning: front members 0 and 1 differ by less than the measured noise "
            "(train_time_s 2.9% < CV 5.0%; val_accuracy 0.10 < std 0.20 points; "
            "calibration on cpu)", OLDER]),
    ],
)  # fmt: skip
def test_pareto_says_when_the_calibration_timed_other_threads(tmp_path, calibrated, lines):
    storage = f"sqlite:///{tmp_path}/r.db"
    study = _timed_study(storage, ["train_time_s", "val_accuracy"], trial_threads=2)
    threads = {} if calibrated is None else {"threads": calibrated}
    study.set_user_attr("calibration", {**NOISE, **threads})
    result = runner.invoke(app, ["pareto", "--storage", storage, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if line.startswith(("warning", "note"))]
    assert said == lines


def test_the_threads_note_only_where_the_calibration_judges_times(tmp_path):
    """No time among the objectives: the calibration's time CV judges nothing, so its threads
    do not matter (nor does an older file's silence about them)."""
    storage = f"sqlite:///{tmp_path}/r.db"
    study = _timed_study(storage, ["n_params", "val_accuracy"], trial_threads=2)
    study.set_user_attr("calibration", NOISE)
    result = runner.invoke(app, ["pareto", "--storage", storage, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert "thread" not in result.stderr


def test_an_older_calibration_file_reads_without_threads(tmp_path):
    """Files written before dse recorded threads load as they are; their threads are None."""
    cal = Calibration.from_runs("c", "cpu", [0, 1], [_result([1.0], 0.9), _result([1.1], 0.8)])
    older = {k: v for k, v in cal.to_dict().items() if k not in ("threads", "bf16")}
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(older))
    assert calibrated_threads(load_calibration(path)) is None
    timed = Calibration.from_runs("c", "cpu", [0], [_result([1.0], 0.9)], threads=3, bf16="x")
    assert calibrated_threads(timed.to_dict()) == 3 and timed.to_dict()["bf16"] == "x"


def test_bad_calibration_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "cal.json"
    bad.write_text("{not json")
    result = runner.invoke(
        app,
        [
            "run",
            "--space",
            "smoke",
            "--calibration",
            str(bad),
            "--storage",
            f"sqlite:///{tmp_path}/x.db",
        ],
    )
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: --calibration") and "not JSON" in result.stderr
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("text", ["3", "[1, 2]", '{"epoch_time_cv": 0.1}'])
def test_json_that_is_not_a_calibration_is_one_line(tmp_path, text):
    path = tmp_path / "cal.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match="^calibration .*cal.json: not a dse calibration"):
        load_calibration(path)


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("folder", "--out {tmp}/folder: is a directory"),
        ("missing/c.json", "--out {tmp}/missing/c.json: directory {tmp}/missing does not exist"),
    ],
)
def test_calibrate_checks_its_output_before_training(tmp_path, out, message):
    (tmp_path / "folder").mkdir()
    args = ["calibrate", "--preset", "baseline", "--data-dir", str(tmp_path / "no-data")]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / out)])
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: {message.format(tmp=tmp_path)}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ([f"seed={2**64 - 1}"], f"--runs 2 with seed {2**64 - 1}: the last seed {2**64} is above"),
        (
            [f"seed={2**64 - 2}", "repeats=2"],
            f"--runs 2 with seed {2**64 - 2} and repeats 2: the last seed {2**64} is above",
        ),
    ],
)
def test_calibrate_refuses_seeds_past_torchs_range_before_training(workdir, sets, message):
    """Run i trains seed+i (and its repeats): the last must fit, checked before run 1."""
    result = runner.invoke(app, ["calibrate", *each("--set", sets), "--runs", "2"])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {message} {2**64 - 1}, the largest torch takes"
    ]
    assert not (workdir / "results" / "calibration.json").exists()


@pytest.mark.parametrize("content", [bytes(range(128, 256)), "épsilon: 1".encode("latin-1")])
def test_calibration_not_utf8_is_one_line_and_creates_nothing(tmp_path, content):
    bad = tmp_path / "garbage.yaml"
    bad.write_bytes(content)
    storage = f"sqlite:///{tmp_path}/c.db"
    result = runner.invoke(
        app, ["run", "--space", "smoke", "--storage", storage, "--calibration", str(bad)]
    )
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --calibration {bad}: "), lines
    assert "not UTF-8" in lines[0] and not (tmp_path / "c.db").exists()
