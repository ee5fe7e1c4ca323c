"""Reading a study's results: the numbers dse pareto prints. At scale, the front and the
hypervolume history of thousands of trials take a moment, not minutes (each used to cost O(n²):
a full hypervolume after every trial, every point checked against every other), and give the
same numbers as the definitions."""

from __future__ import annotations

import time

import numpy as np
import optuna
import pytest

from dse.config import TrialConfig
from dse.search.durations import gpu_hours_text, seconds_text
from dse.search.pareto import hypervolume
from dse.search.records import CONFIG, HALF_BATCH
from dse.search.results import (
    HypervolumeSummary,
    StudyView,
    hypervolume_history,
    params_as_run,
    pareto_rows,
    reference_point,
)
from dse.search.trials_table import trials_frame
from tests.conftest import params_study

DIRECTIONS = ["minimize", "maximize"]


def _many_trials(n: int, seed: int = 0) -> StudyView:
    """n complete trials in memory: accuracy rising with time, noisy, with ties."""
    rng = np.random.default_rng(seed)
    times = rng.uniform(1, 100, n).round(1)  # rounded: equal times, and duplicate points
    accuracy = (0.5 + 0.4 * np.sqrt(times / 100) + rng.normal(0, 0.05, n)).round(3)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=DIRECTIONS)
    study.add_trials(
        [optuna.create_trial(values=[t, a]) for t, a in zip(times, accuracy, strict=True)]
    )
    return StudyView(study)


def _brute_front(values: np.ndarray) -> list[int]:
    x = values * np.array([1.0, -1.0])
    return [
        i for i in range(len(x)) if not np.any(np.all(x <= x[i], axis=1) & np.any(x < x[i], axis=1))
    ]


def test_the_front_and_hypervolume_history_of_5000_trials_take_a_moment():
    view = _many_trials(5000)
    started = time.perf_counter()
    front = view.front()
    history = hypervolume_history(view)
    assert time.perf_counter() - started < 3.0  # was about 10 s on 2 cores
    values = np.array([t.values for t in view.complete()])
    assert sorted(t.number for t in front) == _brute_front(values)
    ref = reference_point(view)
    for k in (1, 37, 900, 5000):  # the volume of the first k trials, by the definition
        assert history[k - 1].hypervolume == pytest.approx(
            hypervolume(values[:k], DIRECTIONS, ref), rel=1e-12
        )


def _study_with_seeds(seed_std: dict[str, float]) -> StudyView:
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.set_metric_names(["train_time_s", "val_accuracy"])
    per_seed = [{"seed": s, "train_time_s": 1.0, "val_accuracy": 0.9 + s / 100} for s in range(3)]
    for number in range(2):
        study.add_trial(
            optuna.create_trial(
                values=[1.0 + number, 0.91 + number / 10],
                user_attrs={"per_seed": per_seed, "seed_std": seed_std},
            )
        )
    return StudyView(study)


def test_a_std_the_seeds_do_not_give_is_none_not_zero():
    # fused seeds: the costs are the first seed's alone, so their std is not stored
    rows = pareto_rows(_study_with_seeds({"val_accuracy": 0.01}))
    assert [row["number"] for row in rows] == [0, 1]
    assert all(row["train_time_s_std"] is None for row in rows)
    assert all(row["val_accuracy_std"] == 0.01 for row in rows)


def test_a_count_objective_reads_as_the_integer_it_is():
    # optuna stores values as floats: the front printed 17368 beside 3,274,634 in one column,
    # and 17368.0 in CSV and JSON where `dse trials` has 17368
    rows = pareto_rows(params_study())
    assert [(row["number"], row["n_params"]) for row in rows] == [(0, 17368), (1, 3274634)]
    assert all(type(row["n_params"]) is int for row in rows)


def test_a_half_batch_retry_shows_the_batch_it_ran():
    # --retry-oom runs the point again at half the batch, under the point's params: the front
    # showed batch 50 for a run of 25
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.set_metric_names(["train_time_s", "val_accuracy"])
    choices = optuna.distributions.CategoricalDistribution([25, 50])
    ran = TrialConfig().with_overrides(["batch_schedule.batch_size=25"]).to_dict()
    study.add_trial(
        optuna.create_trial(
            values=[1.0, 0.9],
            params={"batch_schedule.batch_size@fixed": 50, "epochs": 2},
            distributions={
                "batch_schedule.batch_size@fixed": choices,
                "epochs": optuna.distributions.CategoricalDistribution([1, 2]),
            },
            user_attrs={HALF_BATCH: True, CONFIG: ran},
        )
    )
    view = StudyView(study)
    expected = {"batch_schedule.batch_size@fixed": 25, "epochs": 2}
    assert params_as_run(view.trials()[0]) == expected
    assert pareto_rows(view)[0]["params"] == expected
    assert trials_frame(view)["params_batch_schedule.batch_size@fixed"].tolist() == [25]


def test_training_seconds_read_to_a_tenth_below_ten_and_whole_from_ten():
    """A study of tiny trials spent 0.4 s: not '0 training seconds'; large sums read as before."""
    texts = [seconds_text(s) for s in (0.0, 0.04, 0.4, 7.34, 9.94, 9.96, 10.4, 1234.5)]
    assert texts == ["0.0", "0.0", "0.4", "7.3", "9.9", "10", "10", "1234"]
    summary = HypervolumeSummary(0.5, [1.0, 0.1], "the space file", 3, 0.4, gpu=False)
    line = summary.describe(["train_time_s", "val_accuracy"])
    assert line.endswith("; 3 trials finished, 0.4 training seconds")


def test_gpu_hours_of_a_short_study_are_not_zero():
    """A GPU study of short trials read '0.000 GPU-hours'; under 0.01 it reads two significant
    digits and its seconds."""
    texts = [gpu_hours_text(s) for s in (0.0, 0.4, 30.0, 36.0, 7200.0)]
    assert texts == [
        "0 GPU-hours (0.0 s)",
        "0.00011 GPU-hours (0.4 s)",
        "0.0083 GPU-hours (30 s)",
        "0.010 GPU-hours",
        "2.000 GPU-hours",
    ]
    summary = HypervolumeSummary(0.5, [1.0, 0.1], "the space file", 1, 0.4, gpu=True)
    assert summary.describe(["train_time_s", "val_accuracy"]).endswith(
        "; 1 trial finished, 0.00011 GPU-hours (0.4 s)"
    )
