"""MO-ASHA's rung rule (Schmucker et al. 2021, "Multi-objective Asynchronous Successive
Halving"), the asynchronous stopping variant, as pure functions of a rung's records.

A trial that reaches a rung (an epoch count) is ranked against every trial that reached the rung
before it, as recorded in the study; nobody waits for a rung to fill. A trial that passed the
rung with no decision there (run before early stopping was turned on, under other rungs, or
ending at the rung) counts with the estimates its curve gives at the rung. The ranking:

1. non-dominated sorting of the rung's objective vectors into fronts F1, F2, ...;
2. within a front, the paper's epsilon-net order (EpsNet): objectives are min-max scaled over
   the rung's records; the first point is the best in the first objective; each next point is
   the one farthest (Euclidean, scaled) from the points of its front already placed. Exact ties
   go to the lower trial number, so the order is deterministic.

With n records (the newcomer included) the newcomer goes on when the share of records ranked
above it is at most 1/eta: (position - 1) / n <= 1 / eta, so position <= floor(n / eta) + 1. This
is the rule of the paper's reference implementation (syne-tune's MOASHA). The best of a rung
always goes on (so the first trial to reach a rung does), and while a rung holds few records one
more than n / eta may go on: with eta 3, the second of 3 does. A stricter floor(n / eta) lets only
the first of the epsilon-net order (the fastest point) past a young rung, and then an accurate
trial loses to a fast one whenever fewer than 2 * eta trials have reached the rung. The decision
is final: a stopped trial never resumes.

One departure from the paper: at a late rung, where stopping saves less than a 1/eta share of
the run's epochs ((epochs - rung) * eta < epochs: rung 9 of 10 with eta 3, not rung 9 of 16), a
newcomer that no record at the rung dominates goes on whatever its position. Few trials reach a
late rung, so its cutoff is tight (2 records: only the first goes on), and the epsilon-net
order puts the fastest first: the paper's rule stopped the most accurate point of a front one
epoch before its end, to save that epoch. In replay on efficiency_policies' record (30 seeds,
2 workers, rungs 1,3,9, eta 3) this lifted the hypervolume share from 0.830 to 0.891 at the
same compute share (0.370); efficiency's record (16 epochs, rung 9 not late) is unchanged.

Objectives at a rung (the study's objectives, estimated from the epochs run so far):
- val_accuracy: the best validation accuracy so far (the final metric is the best over epochs);
- train_time_s and time_to_best_s: the projected full-run training time: measured epoch times
  plus, for each remaining epoch, the mean measured time of epochs with that epoch's batch size
  (the TrainingPlan's batch size per epoch). A batch size the trial has not run yet (AdaBatch's
  later epochs) takes the time of its nearest measured size (by ratio), scaled by how epoch
  time changes between the two sizes in the study's other curves (`size_scale`): the median
  ratio over trials that ran both sizes, else the ratio of mean epoch times over all trials,
  else 1 (no scaling, which errs long: a larger batch is rarely slower per epoch). Unscaled,
  AdaBatch 16 -> 64 was projected 20% long at rung 1 of quick.yaml and lost to fixed batches it
  beats at the end. time_to_best_s cannot be known before the end: the whole run is what it
  may cost.

The rule's books in a run (`RungBook`, at the end): which rungs a trial waits at, and each
decision taken against the records stored in the study (records.TrialRecord.decision).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from dse.errors import ConfigError, option
from dse.search.pareto import dominates
from dse.search.records import Decision, EpochPoint, TrialRecord
from dse.train.schedules import epoch_batch_sizes

DEFAULT_RUNGS = (1, 3, 9)
DEFAULT_ETA = 3.0
ESTIMABLE = ("train_time_s", "time_to_best_s", "val_accuracy")


@dataclass(frozen=True)
class EarlyStop:
    """`dse run --early-stop moasha --rungs 1,3,9 --eta 3`."""

    rungs: tuple[int, ...] = DEFAULT_RUNGS
    eta: float = DEFAULT_ETA

    def decides_at(self, epoch: int, epochs: int) -> bool:
        """A rung decides only before the last epoch (a finished trial has nothing to stop)."""
        return epoch in self.rungs and epoch < epochs

    def late(self, rung: int, epochs: int) -> bool:
        """Stopping at `rung` saves less than a 1/eta share of the run's epochs."""
        return rung < epochs and (epochs - rung) * self.eta < epochs

    def check(self, metric_names: Sequence[str], source: str) -> None:
        for metric in metric_names:
            if metric not in ESTIMABLE:
                raise ConfigError(
                    f"{source}: objectives.{metric}: {option('early_stop')} moasha cannot "
                    f"estimate it at a rung; use objectives among {', '.join(ESTIMABLE)}"
                )


def parse_rungs(text: str) -> tuple[int, ...]:
    """'1,3,9' -> (1, 3, 9): positive epoch counts, increasing."""
    try:
        rungs = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"{option('rungs')} {text}: expected epoch counts like 1,3,9") from None
    if any(r < 1 for r in rungs) or list(rungs) != sorted(set(rungs)):
        raise ConfigError(f"{option('rungs')} {text}: epoch counts must be >= 1 and increasing")
    return rungs


def check_eta(eta: float) -> float:
    if not eta > 1:
        raise ConfigError(f"{option('eta')} {eta}: must be greater than 1")
    return eta


# --- objectives at a rung ---------------------------------------------------------------------


def _mean_times(curve: Sequence[EpochPoint]) -> dict[int, float]:
    """Mean epoch time per batch size."""
    by_size: dict[int, list[float]] = {}
    for point in curve:
        by_size.setdefault(point.batch_size, []).append(point.epoch_time_s)
    return {size: sum(times) / len(times) for size, times in by_size.items()}


def size_scale(others: Sequence[Sequence[EpochPoint]], measured: int, wanted: int) -> float:
    """Epoch time at batch `wanted` over epoch time at batch `measured`, from other curves."""
    means = [_mean_times(curve) for curve in others]
    paired = [m[wanted] / m[measured] for m in means if wanted in m and measured in m]
    if paired:
        return statistics.median(paired)
    at = {
        size: [p.epoch_time_s for curve in others for p in curve if p.batch_size == size]
        for size in (measured, wanted)
    }
    if at[measured] and at[wanted]:
        return statistics.fmean(at[wanted]) / statistics.fmean(at[measured])
    return 1.0


def projected_train_time(
    curve: Sequence[EpochPoint],
    batch_sizes: Sequence[int],
    others: Sequence[Sequence[EpochPoint]] = (),
) -> float:
    """Measured training time plus the remaining epochs' estimated times (see the module doc);
    `others` are the study's other curves, for batch sizes this trial has not run yet."""
    mean = _mean_times(curve)
    estimate = dict(mean)  # plus each unrun size, estimated once from the measured ones
    total = sum(point.epoch_time_s for point in curve)
    for size in batch_sizes[len(curve) :]:
        if size not in estimate:
            nearest = min(mean, key=lambda m: (abs(math.log(m / size)), m))
            estimate[size] = mean[nearest] * size_scale(others, nearest, size)
        total += estimate[size]
    return total


def rung_values(
    metric_names: Sequence[str],
    curve: Sequence[EpochPoint],
    batch_sizes: Sequence[int],
    others: Sequence[Sequence[EpochPoint]] = (),
) -> tuple[float, ...]:
    """The study's objectives estimated after the epochs in `curve`."""
    values = []
    for metric in metric_names:
        if metric == "val_accuracy":
            values.append(max(point.val_accuracy for point in curve))
        elif metric in ("train_time_s", "time_to_best_s"):
            values.append(projected_train_time(curve, batch_sizes, others))
        else:
            raise ValueError(f"{metric} cannot be estimated at a rung")
    return tuple(values)


# --- the rule ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RungRecord:
    number: int  # trial number
    values: tuple[float, ...]  # objective estimates at the rung, in the study's directions


def _fronts(x: np.ndarray) -> list[list[int]]:
    """Non-dominated sorting (minimization): indices by front, each front in index order."""
    remaining = list(range(len(x)))
    fronts = []
    while remaining:
        front = [i for i in remaining if not any(dominates(x[j], x[i]) for j in remaining)]
        fronts.append(front)
        remaining = [i for i in remaining if i not in front]
    return fronts


def _epsilon_net(scaled: np.ndarray, front: list[int], numbers: list[int]) -> list[int]:
    """The front's points, best first objective first, then each farthest from those placed."""
    first = min(front, key=lambda i: (scaled[i, 0], numbers[i]))
    order, left = [first], [i for i in front if i != first]
    while left:
        gaps = {i: min(float(np.linalg.norm(scaled[i] - scaled[j])) for j in order) for i in left}
        chosen = min(left, key=lambda i: (-gaps[i], numbers[i]))
        order.append(chosen)
        left.remove(chosen)
    return order


def rung_fronts(records: Sequence[RungRecord], directions: Sequence[str]) -> list[list[int]]:
    """Trial numbers of a rung's records by front, best first (epsilon-net within each)."""
    signs = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    x = np.array([r.values for r in records], dtype=float).reshape(-1, len(directions)) * signs
    low, high = x.min(axis=0), x.max(axis=0)
    scaled = (x - low) / np.where(high > low, high - low, 1.0)
    numbers = [r.number for r in records]
    return [[numbers[i] for i in _epsilon_net(scaled, front, numbers)] for front in _fronts(x)]


def rung_order(records: Sequence[RungRecord], directions: Sequence[str]) -> list[int]:
    """Trial numbers of a rung's records, best first (fronts, then epsilon-net within each)."""
    return [number for front in rung_fronts(records, directions) for number in front]


def decide(
    rung: int,
    newcomer: RungRecord,
    earlier: Sequence[RungRecord],
    directions: Sequence[str],
    eta: float,
    late: bool = False,
) -> Decision:
    """Does `newcomer` go on past `rung`, given the records of trials that reached it before?
    `late`: stopping at this rung saves little (EarlyStop.late), so a newcomer on the rung's
    first front goes on whatever its position (see the module doc)."""
    records = [r for r in earlier if r.number != newcomer.number] + [newcomer]
    fronts = rung_fronts(records, directions)
    position = [n for front in fronts for n in front].index(newcomer.number) + 1
    cutoff = math.floor(len(records) / eta + 1e-9) + 1  # (position - 1) / n <= 1 / eta
    return Decision(
        rung=rung,
        values=newcomer.values,
        proceed=position <= cutoff or (late and newcomer.number in fronts[0]),
        position=position,
        of=len(records),
        cutoff=cutoff,
    )


# --- the books of a run -----------------------------------------------------------------------


class RungBook:
    """MO-ASHA's bookkeeping in a run: the rungs a trial stops at, and each decision taken
    against the records of the study's other trials at that rung (so a resumed or shared
    study ranks against every decision stored before)."""

    def __init__(
        self,
        early_stop: EarlyStop,
        metric_names: Sequence[str],
        directions: list[str],
        known: Callable[[int], tuple[float, ...]] | None = None,
    ):
        """`known`: a trial's objectives by its number, in place of the rung's estimates (a
        replay's what-if: the rule with perfect foresight); None in live runs."""
        self.early_stop = early_stop
        self.metric_names = list(metric_names)
        self.directions = directions
        self.known = known

    def _values(
        self,
        number: int,
        curve: Sequence[EpochPoint],
        batch_sizes: Sequence[int],
        curves: Sequence[Sequence[EpochPoint]],
    ) -> tuple[float, ...]:
        if self.known is not None:
            return self.known(number)
        return rung_values(self.metric_names, curve, batch_sizes, curves)

    def rungs_for(self, epochs: int) -> tuple[int, ...]:
        """The rungs a run of `epochs` epochs waits at (none at its last epoch)."""
        return tuple(r for r in self.early_stop.rungs if r < epochs)

    def decide(
        self,
        rung: int,
        number: int,
        curve: Sequence[EpochPoint],
        batch_sizes: Sequence[int],
        trials: Sequence[FrozenTrial],
    ) -> Decision:
        """Rank trial `number` at `rung` among the study's `trials` that reached it before."""
        return self.rank(rung, number, curve, batch_sizes, peers_of(rung, number, trials))

    def rank(
        self,
        rung: int,
        number: int,
        curve: Sequence[EpochPoint],
        batch_sizes: Sequence[int],
        peers: Sequence[Peer],
    ) -> Decision:
        """The decision for trial `number` at `rung`, from its curve so far and its `peers` (the
        other trials, as they stand now). Live runs (`decide`) and replays (replay.py) both
        decide here, so a replay takes the decisions a run would."""
        curves = [p.curve for p in peers]
        earlier = []
        for peer in peers:
            if peer.decision is not None:
                earlier.append(RungRecord(peer.number, peer.decision.values))
            elif len(peer.curve) >= rung:
                # past the rung with no decision there: it ran before early stopping was
                # turned on, under other rungs, or ended at the rung. It counts with what the
                # rule would have estimated for it at the rung.
                estimate = self._values(peer.number, peer.curve[:rung], peer.batch_sizes, curves)
                earlier.append(RungRecord(peer.number, estimate))
        values = self._values(number, curve, batch_sizes, curves)
        newcomer = RungRecord(number, values)
        late = self.early_stop.late(rung, len(batch_sizes))
        return decide(rung, newcomer, earlier, self.directions, self.early_stop.eta, late)


@dataclass(frozen=True)
class Peer:
    """Another trial as a rung decision sees it: its curve so far, its decision at the rung
    (None if it has not reached the rung, or passed it undecided) and its batch size per epoch."""

    number: int
    curve: Sequence[EpochPoint]
    decision: Decision | None
    batch_sizes: Sequence[int]


def peers_of(rung: int, number: int, trials: Sequence[FrozenTrial]) -> list[Peer]:
    """The study's trials that count at a rung decision for trial `number`: running, complete or
    stopped ones, not a failed run's numbers, nor a queued retry's copy of them."""
    live = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
    peers = []
    for trial in trials:
        if trial.state not in live or trial.number == number:
            continue
        record = TrialRecord(trial)
        curve, decision = record.curve, record.decision(rung)
        config = record.trial_config() if decision is None and len(curve) >= rung else None
        sizes = epoch_batch_sizes(config) if config else ()  # read only where rank needs them
        peers.append(Peer(record.number, curve, decision, sizes))
    return peers
