"""The run's Pareto size (progress lines and summary), kept as trials finish: the front
`dse pareto` reads, not optuna's best_trials."""

from __future__ import annotations

import math
import random

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from dse.errors import WorkersCannotStart
from dse.search.devices import Slot
from dse.search.recorder import MAX_FAILED_STARTS, Recorder, SilentReporter, StartFailures
from dse.search.results import StudyView
from dse.search.study import Counting
from dse.space import load_space


def _trial(values, state=TrialState.COMPLETE, violation: float | None = None):
    return create_trial(
        params={"x": random.random()},
        distributions={"x": FloatDistribution(0, 1)},
        values=values if state == TrialState.COMPLETE else None,
        state=state,
        system_attrs={} if violation is None else {"constraints": [violation]},
    )


def test_the_pareto_size_is_the_front_dse_pareto_reads_as_trials_finish():
    """Duplicates on the front all count, a trial that breaks a constraint or has an infinite
    value does not (optuna's best_trials counted the infinite one), pruned trials never; after
    each finished trial the kept count equals the front read from scratch."""
    random.seed(0)
    space = load_space("smoke.yaml")  # train_time_s minimize, val_accuracy maximize
    study = optuna.create_study(directions=space.directions)
    recorder = Recorder(study, space, Counting(space, extended=False), False, SilentReporter())
    trials = [
        _trial([10.0, 0.90]),
        _trial([10.0, 0.90]),  # a duplicate: both on the front
        _trial([5.0, 0.99], violation=1.0),  # would dominate both, but is infeasible
        _trial([math.inf, 0.999]),  # not a result
        _trial(None, state=TrialState.PRUNED),
        _trial([20.0, 0.95]),
        _trial([8.0, 0.92]),  # dominates the two first
    ]
    trials += [_trial([random.uniform(1, 30), random.uniform(0.8, 1.0)]) for _ in range(40)]
    sizes, optuna_sizes = [], []
    for trial in trials:
        study.add_trial(trial)
        size = recorder.pareto_size(study.get_trials(deepcopy=False))
        assert size == len(StudyView(study).front())
        sizes.append(size)
        optuna_sizes.append(len(study.best_trials))
    assert sizes[:7] == [1, 2, 2, 2, 2, 3, 2]
    assert optuna_sizes[:4] == [1, 2, 2, 3]  # optuna's front takes in the infinite value


def test_a_run_every_trial_of_which_failed_is_told_from_one_with_a_success():
    """Only the trials this run started count: an earlier run's complete trial does not make
    this run's failures a success; one complete (or stopped early) trial of its own does."""
    space = load_space("smoke.yaml")
    study = optuna.create_study(directions=space.directions)
    recorder = Recorder(study, space, Counting(space, extended=False), False, SilentReporter())
    for trial in [
        _trial([10.0, 0.9]),
        _trial(None, TrialState.FAIL),
        _trial(None, TrialState.FAIL),
    ]:
        study.add_trial(trial)  # trial 0: an earlier run's; 1 and 2: this run's

    failed = recorder.summary("sqlite:///x.db", 3, 1.0, started={1, 2})
    assert (failed.started, failed.started_failed, failed.every_start_failed) == (2, 2, True)
    assert failed.first_failure.startswith("trial 1: ")
    study.add_trial(_trial(None, TrialState.PRUNED))
    assert not recorder.summary("sqlite:///x.db", 4, 1.0, started={1, 2, 3}).every_start_failed
    assert not recorder.summary("sqlite:///x.db", 3, 1.0, started=set()).every_start_failed


def test_workers_dead_at_start_end_the_run_but_not_once_a_trial_reached_one():
    """A worker that cannot start is given up on after MAX_FAILED_STARTS deaths; once a trial
    has reached a worker, deaths are the trials' (each retried once), never the run's end."""
    slot = Slot(index=0, device="cpu", threads=1)
    starts = StartFailures()
    assert [starts.died() for _ in range(MAX_FAILED_STARTS - 1)] == [True, True]
    assert starts.given_up(slot, "exit code 1") is None
    assert starts.died()
    error = starts.given_up(slot, "exit code 1: ImportError: no torch")
    assert isinstance(error, WorkersCannotStart) and error.exit_code == 1
    assert str(error).startswith(
        "the local workers cannot start: 3 died in a row before taking a trial, the last on "
        "cpu#0 (exit code 1: ImportError: no torch); "
    )
    landed = StartFailures(landed=True)
    assert not any(landed.died() for _ in range(5)) and landed.given_up(slot, "x") is None
