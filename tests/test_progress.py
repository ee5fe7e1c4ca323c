"""The live view of a run moves: the clock ticks, each trial shows its epoch and its own ETA,
and the study's ETA comes from the epoch times seen so far (or the study's history)."""

from __future__ import annotations

import io

import optuna
from rich.console import Console

from dse.progress import EtaModel, LineReporter, LiveReporter, Running, clock_text, describe_trial
from dse.search.devices import Slot
from dse.search.forms import Decision
from dse.search.records import Placement, TrialRecord


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def shown(reporter: LiveReporter) -> str:
    console = Console(file=io.StringIO(), width=160, force_terminal=False)
    console.print(reporter.renderable())
    return console.file.getvalue()


def test_the_view_ticks_and_estimates_from_epochs_seen():
    clock = FakeClock()
    reporter = LiveReporter(Console(file=io.StringIO()), clock)
    slots = [Slot(0, "cpu", 1), Slot(1, "cpu", 1)]
    reporter.start("s", planned=4, done=0, slots=slots, objectives=["val_accuracy"])
    reporter.trial_started(0, slots[0], {"model.routing_iterations": 1}, epochs=4)
    reporter.trial_started(1, slots[1], {"model.routing_iterations": 3}, epochs=4)
    before = shown(reporter)
    assert "0/4" in before and "ETA ?" in before  # nothing measured yet: no guess

    clock.now += 10  # the first epoch of trial 0 took 10 s
    reporter.trial_epoch(0, 1, 4, 0.5)
    clock.now += 3
    view = shown(reporter)
    assert "1/4" in view and "0.5000" in view and "13s" in view  # the clock moved
    # trial 0: 3 epochs of 10 s left, 3 s into the next: 27 s; trial 1 (0 epochs, 13 s in):
    # 4 x 10 - 13 = 27 s; 2 trials not started: 2 x 4 x 10 = 80 s; over 2 slots: 67 s.
    assert view.count(clock_text(27)) == 2
    assert f"ETA {clock_text(67)}" in view
    reporter.stop()


def test_a_resumed_study_estimates_from_its_history():
    model = EtaModel(slots=1, history_s_per_epoch=5.0)
    trial = Running("cpu#0", "", epochs=2, started=0.0)
    model.trial_epochs.append(2)
    assert model.trial_left(trial, now=1.0) == 9.0  # 2 epochs of 5 s, 1 s in
    assert model.study_left([trial], not_started=3, now=1.0) == 9.0 + 3 * 2 * 5.0


def finished(study, values: list[float], violation: float | None = None):
    trial = study.ask()
    TrialRecord(trial).start({}, Placement("cpu#0", "cpu"))
    if violation is not None:
        trial.set_constraint("peak_mem_mb <= 100", violation)
    study.tell(trial, values)
    return study.trials[-1]


def test_a_finished_trial_shows_the_study_s_own_objectives():
    """A study minimizing n_params and peak_mem_mb: its line shows them (a count as an int),
    not val_accuracy and train_time_s; an infeasible one names the constraint it fails."""
    study = optuna.create_study(directions=["minimize", "minimize"])
    objectives = ["n_params", "peak_mem_mb"]
    feasible = finished(study, [12345.0, 80.5], violation=-19.5)
    assert describe_trial(feasible, objectives) == (
        "trial 0 complete: n_params 12,345, peak_mem_mb 80.5 on cpu#0"
    )
    over = finished(study, [99999.0, 120.25], violation=20.25)
    assert describe_trial(over, objectives) == (
        "trial 1 complete: n_params 99,999, peak_mem_mb 120.2 on cpu#0; "
        "infeasible (peak_mem_mb <= 100 fails)"
    )


def test_the_quiet_line_of_the_default_study(capsys):
    """train_time_s and val_accuracy, as before, with the run's count and the Pareto size."""
    study = optuna.create_study(directions=["minimize", "maximize"])
    reporter = LineReporter()
    reporter.start("s", 4, 0, [Slot(0, "cpu", 1)], ["train_time_s", "val_accuracy"])
    reporter.trial_finished(finished(study, [12.34, 0.98125]), done=1, pareto_size=1)
    reporter.trial_finished(finished(study, [12345.67, 0.99]), done=2, pareto_size=2)
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "[1/4] trial 0 complete: train_time_s 12.34, val_accuracy 0.9812 on cpu#0; Pareto size 1",
        "[2/4] trial 1 complete: train_time_s 12,345.7, val_accuracy 0.99 on cpu#0; Pareto size 2",
    ]  # a long trial's seconds in full, not 1.235e+04


def test_a_stopped_trial_names_the_rung_whose_records_stopped_it():
    """Stopped at its rung's cutoff: its rank there; stopped at rung 3 because it no longer
    ranks within rung 1's cutoff (ASHA's promotion rule): its rank at rung 1 now."""
    study = optuna.create_study(directions=["minimize", "maximize"])
    objectives = ["train_time_s", "val_accuracy"]
    for decision in (
        Decision(1, (9.0, 0.5), False, 4, 6, 3),
        Decision(3, (9.0, 0.5), False, 5, 7, 3, ranked_at=1),
    ):
        trial = study.ask()
        record = TrialRecord(trial)
        record.start({}, Placement("cpu#0", "cpu"))
        record.add_decision(decision)
        record.stopped(decision.rung, list(decision.values))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    first, second = study.trials
    assert describe_trial(first, objectives) == (
        "trial 0 stopped at epoch 1: rank 4 of 6 at the rung (top 3 go on) on cpu#0"
    )
    assert describe_trial(second, objectives) == (
        "trial 1 stopped at epoch 3: rank 5 of 7 at epoch 1's rung now (top 3 go on) on cpu#0"
    )
