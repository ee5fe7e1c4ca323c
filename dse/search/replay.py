"""Replaying a search over a recorded grid (recording.py): what a search method would have found,
and at what training cost, without training anything.

A replay runs the search as `dse run` would, on a simulated clock:
- W asynchronous virtual workers; a trial's epoch e ends `epoch_time_s` after its epoch e - 1
  (the recorded times), the clock jumps from one epoch's end to the next (ties: the trial
  started first), and a worker freed by a finished or stopped trial takes the next trial at once;
- trials come from the same sampler as a live run (study.make_sampler, same seed and budget),
  through an optuna study in memory: grid points are queued in the seed's space-filling
  order (grid_order.py), as the runner queues them (study.enqueue_missing); a sampled point
  that is not a valid config is failed and drawn again, as live;
- MO-ASHA decides with the runner's code (moasha.RungBook.rank), fed what the runner feeds it:
  the trial's curve so far, its batch size per epoch and parameters, and every other started
  trial's curve up to now, its batch sizes, parameters and whether it completed;
- a trial's objectives are the record's: its final values when it completes (told to the
  study), the rung's estimates when it is stopped (told PRUNED, as live).

The clock counts training seconds only (no start-up, evaluation or data loading): with one
worker the order of events is the live run's; with several it can differ where the live run's
other costs changed which trial reached a rung first.
"""

from __future__ import annotations

import heapq
import math
import random
import warnings
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from dse.errors import ConfigError, DseError
from dse.search.early_stop import EarlyStop
from dse.search.grid_order import spread_order
from dse.search.moasha import Peer, RungBook
from dse.search.pareto import hypervolume, non_dominated
from dse.search.recording import RecordedTrial, Recording
from dse.search.records import Decision, EpochPoint, TrialRecord, param_key
from dse.search.results import worst_plus_margin
from dse.search.study import Counting, completed_on_grid, enqueue_missing, make_sampler
from dse.search.unvisited import Novelty, Outcome, repeat_error
from dse.space import SearchSpace
from dse.train.schedules import epoch_batch_sizes

METHODS = ("grid", "random", "nsga2", "tpe", "gp", "moasha", "moasha-shuffled", "moasha-oracle")
GRID_METHODS = ("grid", "moasha", "moasha-shuffled", "moasha-oracle")  # every point, queued
# Replay-only what-ifs. moasha-shuffled: MO-ASHA with the grid queued in an order shuffled by
# the seed (a live run queues it space-filling, grid_order.py): what the order is worth.
# moasha-oracle: MO-ASHA ranking each trial at a rung by its final objectives, as if its early
# curve told them: what the rule loses by itself, apart from what early estimates cost.
MAX_INVALID_SAMPLES = 50  # as the runner: sampled points in a row that are not valid configs


@dataclass(frozen=True)
class ReplayedTrial:
    """One trial of a replay: the point it ran, how far, and the decisions taken on it."""

    number: int
    point: str  # param_key of its params
    recorded: int  # the record's trial number for the point
    epochs_run: int
    stopped_at: int | None
    decisions: tuple[Decision, ...]
    compute_s: float


@dataclass
class SeedRun:
    """One method, one seed: its trials and its hypervolume against compute."""

    method: str
    seed: int
    trials: list[ReplayedTrial] = field(default_factory=list)
    compute_s: float = 0.0
    hypervolume: float = 0.0
    history: list[tuple[float, float]] = field(default_factory=list)  # (compute_s, hypervolume)


class Grid:
    """A record made ready for replays: the space, the trials by point, the reference point
    and the whole grid's hypervolume and training seconds (shared by every replay of it)."""

    def __init__(self, recording: Recording):
        self.recording = recording
        self.space: SearchSpace = recording.search_space()
        self.directions = recording.directions
        self.by_key: dict[str, RecordedTrial] = {}
        for trial in recording.trials:
            self.by_key.setdefault(trial.key, trial.over_all_seeds())
        self.batch_sizes = {key: batch_sizes(t) for key, t in self.by_key.items()}
        every = self.space.grid() if self.space.finite else []
        self.grid = self.space.runnable(every)  # the points a run can train
        self.every = every  # with the clashing combinations, as the runner orders them
        self.epochs = max((t.epochs for t in recording.trials), default=0)  # the longest run's
        self.run_lengths = sorted({t.epochs for t in recording.trials})  # an epochs axis: several
        complete = [t for t in self.by_key.values() if t.values is not None and self.feasible(t)]
        if not complete:
            constraints = "; ".join(str(c) for c in self.space.constraints)
            raise ConfigError(
                f"study {recording.study}: no point of the grid meets its constraints "
                f"({constraints}): there is no front to measure a search against"
            )
        given = self.space.reference_point
        values = [list(t.values or ()) for t in complete]
        # as `dse pareto` takes it: from every complete trial, feasible or not
        ran = [list(t.values) for t in self.by_key.values() if t.values is not None]
        self.reference = list(given) if given else worst_plus_margin(ran, self.directions)
        self.hypervolume = self.volume(values) if values else 0.0
        if not self.hypervolume > 0:
            raise ConfigError(self.nothing_inside())
        # the epoch times a replay adds up, summed exactly (math.fsum: in any order, the same
        # float), so a search that ran every epoch spends a share of exactly 1
        try:
            self.compute_s = math.fsum(
                p.epoch_time_s for t in self.by_key.values() for p in t.curve
            )
        except OverflowError:
            raise ConfigError(
                f"study {recording.study}: its epoch times add up past any number of seconds"
            ) from None

    def volume(self, values: list[list[float]]) -> float:
        """The hypervolume of the points' front, its distinct points in sorted order: a search
        that found the grid's front has the grid's volume to the last bit (share 1.0, not
        0.9999999999999998 from other dominated points in its sum)."""
        front = sorted({tuple(values[i]) for i in non_dominated(values, self.directions)})
        return hypervolume([list(p) for p in front], self.directions, self.reference)

    def nothing_inside(self) -> str:
        """The refusal of a grid whose feasible points all lie outside the reference point's box
        (a space's reference_point better than every point in some objective): its hypervolume
        is 0, and a share of 0 is not one."""
        names = self.recording.metric_names
        point = ", ".join(f"{n}={v:g}" for n, v in zip(names, self.reference, strict=True))
        return (
            f"study {self.recording.study}: no feasible point of the grid is better than its "
            f"reference point ({point}) in every objective: the grid's hypervolume is 0, there "
            "is nothing to measure a search against"
        )

    def feasible(self, trial: RecordedTrial) -> bool:
        for constraint in self.space.constraints:
            at = f"study {self.recording.study}: trial {trial.number}"
            if constraint.metric not in trial.metrics:
                raise ConfigError(
                    f"{at} has no {constraint.metric}, which its constraint {constraint} reads"
                )
            value = trial.metrics[constraint.metric]
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ConfigError(
                    f"{at}: {constraint.metric} {value!r} is not a number (its constraint "
                    f"{constraint} reads it)"
                )
        return all(c.violation(trial.metrics) <= 0 for c in self.space.constraints)


def batch_sizes(trial: RecordedTrial) -> tuple[int, ...]:
    """Its batch size per epoch, as the runner computes them from the config."""
    from dse.config import TrialConfig

    config = TrialConfig.from_dict(trial.config, source=f"recorded trial {trial.number}")
    return epoch_batch_sizes(config)


@dataclass
class Running:
    trial: optuna.Trial
    recorded: RecordedTrial
    key: str
    curve: list[EpochPoint] = field(default_factory=list)
    decisions: dict[int, Decision] = field(default_factory=dict)
    stopped_at: int | None = None


class Simulation:
    """One replay of one method with one seed (see the module doc)."""

    def __init__(
        self,
        grid: Grid,
        method: str,
        seed: int,
        workers: int,
        budget: int | None = None,
        early_stop: EarlyStop | None = None,
    ):
        self.grid, self.workers = grid, workers
        space = grid.space
        on_grid = method in GRID_METHODS
        self.planned = len(grid.grid) if on_grid else (budget or len(grid.grid))
        sampler = make_sampler("grid" if on_grid else method, seed, self.planned)
        self.study = optuna.create_study(directions=grid.directions, sampler=sampler)
        self.novelty = Novelty(self.study, Counting(space, extended=False), seed)  # as live
        if on_grid:
            if method == "moasha-shuffled":
                order = list(grid.grid)
                random.Random(seed).shuffle(order)
            else:
                # as the runner orders it (options.py), less the points it fails untrained
                order = [p for p in spread_order(grid.every, seed) if p in grid.grid]
            points = completed_on_grid(list(space.points), order)  # as live: points first
            enqueue_missing(self.study, space, points, origin="point")
            enqueue_missing(self.study, space, order, origin="grid")
        else:
            enqueue_missing(self.study, space, list(space.points), origin="point")
        self.waiting = len(self.study.get_trials(deepcopy=False))
        stop = early_stop if method.startswith("moasha") else None
        known = self.final_values if method == "moasha-oracle" else None
        self.book = RungBook(stop, space.metric_names, grid.directions, known) if stop else None
        self.run = SeedRun(method, seed)
        self.started: dict[int, Running] = {}  # by replay trial number, in order
        self.in_flight = 0
        self.finished = 0
        self.events: list[tuple[float, int, int]] = []  # (time, sequence, trial number)
        self.sequence = 0
        self.front: list[list[float]] = []

    def simulate(self) -> SeedRun:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            self.fill(0.0)
            while self.events:
                now, _, number = heapq.heappop(self.events)
                self.epoch_done(now, number)
        self.run.trials = [self.replayed(n, r) for n, r in self.started.items()]
        ran = (p.epoch_time_s for r in self.started.values() for p in r.curve)
        self.run.compute_s = math.fsum(ran)  # as the grid's (the running sum's order differs)
        return self.run

    def fill(self, now: float) -> None:
        """Start trials on idle workers while there is queued work or budget (the runner's
        room: planned minus finished, running and queued)."""
        invalid = 0
        while self.in_flight < self.workers:
            room = 0 if self.novelty.exhausted else self.planned - self.finished - self.in_flight
            room -= self.waiting
            if self.waiting == 0 and room <= 0:
                return
            trial = self.study.ask()  # pops a queued trial first, as the runner does
            self.waiting = max(0, self.waiting - 1)
            outcome = self.start(now, trial)
            if outcome == Outcome.STARTED:
                invalid = 0
                self.novelty.started()
            elif outcome == Outcome.REPEAT:
                self.waiting += self.novelty.after_repeat(trial.number)
            else:
                invalid += 1
                if invalid >= MAX_INVALID_SAMPLES:
                    raise ConfigError(
                        f"replay: {invalid} sampled points in a row were not valid configs"
                    )

    def start(self, now: float, trial: optuna.Trial) -> Outcome:
        space = self.grid.space
        values = space.suggest(trial)
        key = param_key(space.encoded(values))
        recorded = self.grid.by_key.get(key)
        if recorded is None:
            try:
                space.config_for(values)
            except DseError:  # not a valid config: failed, not counted, drawn again
                self.study.tell(trial, state=TrialState.FAIL)
                return Outcome.INVALID
            raise ConfigError(
                f"the record of study {self.grid.recording.study} has no run of {key}: "
                "replay needs every grid point run"
            )
        earlier = self.novelty.repeat_of(trial, values)
        if earlier is not None:
            TrialRecord(trial).mark_invalid(repeat_error(earlier))
            self.study.tell(trial, state=TrialState.FAIL)
            return Outcome.REPEAT
        self.started[trial.number] = Running(trial, recorded, key)
        self.in_flight += 1
        self.schedule(now, trial.number)
        return Outcome.STARTED

    def schedule(self, now: float, number: int) -> None:
        """The event of the trial's next epoch ending."""
        running = self.started[number]
        epoch = len(running.curve)  # the next epoch, 0-based
        if epoch >= len(running.recorded.curve):
            raise ConfigError(
                f"the record of study {self.grid.recording.study} stops trial "
                f"{running.recorded.number} after epoch {epoch}; the replay runs it further"
            )
        self.sequence += 1
        ends = now + running.recorded.curve[epoch].epoch_time_s
        heapq.heappush(self.events, (ends, self.sequence, number))

    def epoch_done(self, now: float, number: int) -> None:
        running = self.started[number]
        point = running.recorded.curve[len(running.curve)]
        running.curve.append(point)
        self.run.compute_s += point.epoch_time_s
        epoch, epochs = point.epoch, running.recorded.epochs
        if self.book is not None and self.book.early_stop.decides_at(epoch, epochs):
            decision = self.book.rank(
                epoch,
                number,
                running.curve,
                self.grid.batch_sizes[running.key],
                self.peers(number),
                running.recorded.params,
            )
            running.decisions[epoch] = decision
            if not decision.proceed:
                running.stopped_at = epoch
                self.study.tell(running.trial, state=TrialState.PRUNED)
                self.finish(now)
                return
        if epoch < epochs:
            self.schedule(now, number)
            return
        values = list(running.recorded.values or ())
        self.study.tell(running.trial, values)
        if self.grid.feasible(running.recorded):
            self.front.append(values)
            hv = self.grid.volume(self.front)
            self.run.hypervolume = hv
        self.run.history.append((self.run.compute_s, self.run.hypervolume))
        self.finish(now)

    def finish(self, now: float) -> None:
        self.in_flight -= 1
        self.finished += 1
        self.fill(now)

    def final_values(self, number: int) -> tuple[float, ...]:
        return tuple(self.started[number].recorded.values or ())

    def peers(self, number: int) -> list[Peer]:
        """The other started trials as the runner's study holds them now."""
        return [
            Peer(
                n,
                r.curve,
                self.grid.batch_sizes[r.key],
                r.recorded.params,
                complete=r.stopped_at is None and len(r.curve) == r.recorded.epochs,
            )
            for n, r in self.started.items()
            if n != number
        ]

    def replayed(self, number: int, running: Running) -> ReplayedTrial:
        return ReplayedTrial(
            number=number,
            point=running.key,
            recorded=running.recorded.number,
            epochs_run=len(running.curve),
            stopped_at=running.stopped_at,
            decisions=tuple(running.decisions[r] for r in sorted(running.decisions)),
            compute_s=sum(p.epoch_time_s for p in running.curve),
        )


def replay_method(
    grid: Grid,
    method: str,
    seed: int,
    workers: int,
    budget: int | None = None,
    early_stop: EarlyStop | None = None,
) -> SeedRun:
    """Replay `method` with `seed` on the recorded grid."""
    if method not in METHODS:
        raise ConfigError(f"replay: unknown method {method!r}; choose from {', '.join(METHODS)}")
    return Simulation(grid, method, seed, workers, budget, early_stop or EarlyStop()).simulate()
