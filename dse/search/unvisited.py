"""No point of a finite space trained twice.

optuna's samplers (random, tpe, nsga2, gp) draw with replacement: on a finite space they
propose points the study has already run, and a run that trained them again would spend its
budget on copies (the seed is the config's, so a CPU copy gives the same numbers): 6 random
draws from a 16-point grid repeat a point two times in three. Syne Tune's searchers likewise
suggest no configuration twice, and its tuning stops once a finite space is exhausted.

A sampled point already finished, running or queued in the study is a repeat: it is recorded
as a sample not run, like an invalid one (failed, not trained, not counted toward the budget;
`dse trials` names the trial that ran the point), and the sampler is asked again, so random
search becomes sampling without replacement. A model-based sampler that keeps proposing the
points it believes best would ask forever: after MAX_REPEATS_IN_A_ROW repeats in a row, one
unvisited point, drawn by the run's seed, is queued instead. When every valid point has run
(or is running or queued), nothing is left to propose and the run ends short of its budget.
Live runs (runner.py) and replays (replay.py) both decide here, so a replay asks what a run
would.
"""

from __future__ import annotations

import random
from enum import Enum, auto
from typing import Any

import optuna

from dse.search.records import enqueue_point, param_key
from dse.search.study import Counting, present_points
from dse.space import SearchSpace

MAX_REPEATS_IN_A_ROW = 10


class Outcome(Enum):
    """What came of handing a trial on (the runner's dispatch, the replay's start)."""

    STARTED = auto()
    INVALID = auto()  # its sample is not a valid config
    REPEAT = auto()  # its sample is a point the study has run


def valid_points(space: SearchSpace) -> list[dict[str, Any]]:
    """The finite space's points that are valid configs, encoded (as optuna params), in grid
    order: what unvisited_point draws from (computed once per run: each is a config check)."""
    return [space.encoded(point) for point in space.runnable(space.grid())]


def unvisited_point(
    valid: list[dict[str, Any]], present: dict[str, int], seed: int, number: int
) -> dict[str, Any] | None:
    """One of the `valid` points (valid_points) not present, drawn by (`seed`, `number`: the
    repeat's trial number), so that a replay draws what the run did; None when all are."""
    candidates = [params for params in valid if param_key(params) not in present]
    if not candidates:
        return None
    return random.Random(f"{seed}:{number}").choice(candidates)


class Novelty:
    """A run's (or a replay's) side of it, over the trials of `counting` in `study`: the
    repeats in a row so far, whether the space has run out, and its valid points (listed at
    the first repeat)."""

    def __init__(self, study: optuna.Study, counting: Counting, seed: int):
        self.study, self.counting, self.seed = study, counting, seed
        self.space: SearchSpace = counting.space
        self.repeats_in_a_row = 0
        self.exhausted = False  # every valid point has run, runs or is queued
        self.valid: list[dict[str, Any]] | None = None

    def repeat_of(self, trial: optuna.Trial, values: dict[str, Any]) -> int | None:
        """The trial that ran (or runs, or waits to run) the point `trial` holds (`values`,
        decoded); None if none did, or the space has no grid to list (continuous, or past
        MAX_GRID_POINTS: repeats are as rare as there; the study is not read). A
        queued point is never one: points are queued only where none is present
        (study.enqueue_missing, after_repeat)."""
        if not self.space.enumerable:
            return None
        present = present_points(self.counting.trials(self.study), besides=trial.number)
        return present.get(param_key(self.space.encoded(values)))

    def started(self) -> None:
        self.repeats_in_a_row = 0

    def after_repeat(self, number: int) -> bool:
        """After repeat `number`: queue an unvisited point once MAX_REPEATS_IN_A_ROW repeats
        came in a row (True when one was queued), or note that none is left."""
        self.repeats_in_a_row += 1
        if self.valid is None:
            self.valid = valid_points(self.space)
        present = present_points(self.counting.trials(self.study))
        point = unvisited_point(self.valid, present, self.seed, number)
        if point is None:
            self.exhausted = True
        elif self.repeats_in_a_row >= MAX_REPEATS_IN_A_ROW:
            enqueue_point(self.study, point, origin="unvisited")
            self.repeats_in_a_row = 0
            return True
        return False


def repeat_error(of: int) -> str:
    """Why a repeat was not run, as `dse trials` shows it."""
    return f"repeat: trial {of} runs this point; not trained again"
