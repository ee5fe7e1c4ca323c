"""The trials table (results.trials_frame): what it says of trials that did not finish."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from dse.search.results import StudyView, trials_frame


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_trial_without_metrics_is_not_called_feasible():
    """Feasible means: met every constraint. A complete trial of a study without constraints
    meets them all; a failed or running trial has no metrics to meet them with."""
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.set_metric_names(["train_time_s", "val_accuracy"])
    study.tell(study.ask(), [1.0, 0.9])
    study.tell(study.ask(), state=TrialState.FAIL)
    study.ask()  # running
    frame = trials_frame(StudyView(study))
    assert list(frame["state"]) == ["COMPLETE", "FAIL", "RUNNING"]
    assert frame["feasible"].iloc[0] == True  # noqa: E712 (a numpy bool in an object column)
    assert frame["feasible"].iloc[1:].isna().all()
