"""The live view of a run moves: the clock ticks, each trial shows its epoch and its own ETA,
and the study's ETA comes from the epoch times seen so far (or the study's history)."""

from __future__ import annotations

import io

from rich.console import Console

from dse.progress import EtaModel, LiveReporter, Running, clock_text
from dse.search.devices import Slot


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
    reporter.start("s", planned=4, done=0, slots=slots)
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
