"""The line dse export prints about the trial it took."""

from __future__ import annotations

import optuna
import pytest

from dse.errors import StorageError
from dse.search.picks import describe_choice, pick, trial_by_number
from dse.search.results import StudyView
from tests.conftest import params_study


def test_a_count_objective_is_said_as_an_integer():
    # it read "n_params 3.275e+06", where dse trials shows 3,274,634
    view = params_study()
    line = describe_choice(view, view.trials()[1])
    assert line == "trial 1: n_params 3,274,634, val_accuracy 0.75; on the front"


def test_an_infeasible_trial_says_which_constraint_it_fails():
    # it said only "not on the front"
    view = params_study()
    line = describe_choice(view, view.trials()[2])
    assert line == "trial 2: n_params 100, val_accuracy 0.2; infeasible (val_accuracy >= 0.3 fails)"


def test_a_pick_by_a_metric_that_is_no_objective_shows_it():
    """--pick fastest ranks by train_time_s, most-accurate by val_accuracy: the line showed
    only the objectives, so not what the pick went by when it is none of them."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "minimize"])
    study.set_metric_names(["n_params", "peak_mem_mb"])
    for n_params, mem, seconds, accuracy in ((17368, 90.0, 12.5, 0.9), (5000, 120.0, 30.25, 0.7)):
        metrics = {"train_time_s": seconds, "val_accuracy": accuracy}
        study.add_trial(
            optuna.create_trial(values=[n_params, mem], user_attrs={"metrics": metrics})
        )
    view = StudyView(study)
    fastest = describe_choice(view, pick(view, "fastest"), "fastest")
    assert fastest == (
        "trial 0: the fastest of the front's 2 (n_params 17,368, peak_mem_mb 90; train_time_s 12.5)"
    )
    accurate = describe_choice(view, pick(view, "most-accurate"), "most-accurate")
    assert accurate.endswith("(n_params 17,368, peak_mem_mb 90; val_accuracy 0.9)")
    knee = describe_choice(view, view.trials()[1], "knee")
    assert knee == "trial 1: the knee of the front's 2 (n_params 5,000, peak_mem_mb 120)"


def test_a_pick_by_an_objective_shows_it_once():
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.set_metric_names(["n_params", "val_accuracy"])
    for n_params, accuracy in ((17368, 0.47), (3274634, 0.75)):
        metrics = {"train_time_s": 10.0, "val_accuracy": accuracy}
        trial = optuna.create_trial(values=[n_params, accuracy], user_attrs={"metrics": metrics})
        study.add_trial(trial)
    view = StudyView(study)
    line = describe_choice(view, pick(view, "most-accurate"), "most-accurate")
    assert line == (
        "trial 1: the most accurate of the front's 2 (n_params 3,274,634, val_accuracy 0.75)"
    )


def test_a_trial_number_in_a_study_without_trials_says_so():
    # it said "(numbers 0..-1)"
    view = StudyView(optuna.create_study(study_name="fresh", directions=["minimize"] * 2))
    with pytest.raises(StorageError) as raised:
        trial_by_number(view, 0)
    assert str(raised.value) == "trial 0: study 'fresh' has no such trial (it has no trials yet)"


def test_a_study_made_by_optuna_alone_is_picked_by_its_objectives_or_refused_in_words():
    # it raised KeyError: 'train_time_s' (a traceback): such a study records no metrics
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.set_metric_names(["train_time_s", "val_accuracy"])
    for seconds, accuracy in ((2.0, 0.7), (1.0, 0.5)):
        study.add_trial(optuna.create_trial(values=[seconds, accuracy]))
    view = StudyView(study)
    assert [pick(view, how).number for how in ("fastest", "most-accurate")] == [1, 0]
    other = optuna.create_study(study_name="other", directions=["minimize", "minimize"])
    other.add_trial(optuna.create_trial(values=[1.0, 2.0]))
    with pytest.raises(StorageError) as raised:
        pick(StudyView(other), "most-accurate")
    assert str(raised.value) == (
        "pick most-accurate: trial 0 has no recorded val_accuracy to rank by"
    )
