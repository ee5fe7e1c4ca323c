"""The line dse export prints about the trial it took."""

from __future__ import annotations

import optuna

from dse.search.picks import describe_choice
from dse.search.results import StudyView


def _params_study() -> StudyView:
    """n_params against val_accuracy; trial 2 fails its constraint."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.set_metric_names(["n_params", "val_accuracy"])
    for n_params, accuracy, excess in ((17368, 0.47, -0.1), (3274634, 0.75, -0.4), (100, 0.2, 0.1)):
        study.add_trial(
            optuna.create_trial(
                values=[n_params, accuracy], constraints={"val_accuracy >= 0.3": excess}
            )
        )
    return StudyView(study)


def test_a_count_objective_is_said_as_an_integer():
    # it read "n_params 3.275e+06", where dse trials shows 3,274,634
    view = _params_study()
    line = describe_choice(view, view.trials()[1])
    assert line == "trial 1: n_params 3,274,634, val_accuracy 0.75; on the front"


def test_an_infeasible_trial_says_which_constraint_it_fails():
    # it said only "not on the front"
    view = _params_study()
    line = describe_choice(view, view.trials()[2])
    assert line == "trial 2: n_params 100, val_accuracy 0.2; infeasible (val_accuracy >= 0.3 fails)"
