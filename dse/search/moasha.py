"""MO-ASHA's rung rule (Schmucker et al. 2021, "Multi-objective Asynchronous Successive
Halving"), the asynchronous stopping variant, as pure functions of a rung's records.

A trial that reaches a rung (an epoch count) is ranked against every trial that reached the rung
before it, as recorded in the study; nobody waits for a rung to fill. Each of them counts with
the estimates its curve up to the rung gives now (below), whether it was decided there, passed
the rung undecided (run before early stopping was turned on, under other rungs, or ending at the
rung) or completed since. The ranking:

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

Two departures from the paper where stopping a trial is its last chance: a newcomer that
no record at the rung dominates (on the rung's first front) goes on whatever its position
- at a late rung, where stopping saves less than a 1/eta share of the run's epochs
  ((epochs - rung) * eta < epochs: rung 9 of 10 with eta 3, not rung 9 of 16). Few trials reach
  a late rung, so its cutoff is tight (2 records: only the first goes on), and the epsilon-net
  order puts the fastest first: the paper's rule stopped the most accurate point of a front one
  epoch before its end, to save that epoch. In replay on efficiency_policies' record (30 seeds,
  2 workers, rungs 1,3,9, eta 3) this lifted the hypervolume share from 0.830 to 0.891 at the
  same compute share (0.370); efficiency's record (16 epochs, rung 9 not late) is unchanged;
- at a run's last rung (the last decision before its end), once the rung holds eta records or
  more. A trial stopped there never shows its end, and a young rung's cutoff (floor(n / eta) + 1)
  lets only one or two of its first front past, the fastest first: with the front 11.7 s at
  0.947, 12.3 s at 0.958, 15.5 s at 0.968 on efficiency_policies' grid, the middle point reached
  rung 3 of 10 third of 4 and was stopped, perfect foresight or not. Below eta records the front
  says little (every record of two can be on it) and the cutoff stands. In replay (30 seeds,
  default rungs 1,3, eta 3), hypervolume and compute shares from the paper's cutoff to this:
  2 workers: efficiency_policies 0.955 at 0.352 -> 0.974 at 0.358, its re-recording 0.954 at
  0.294 -> 0.959 at 0.296, efficiency's re-recording 0.953 at 0.149 -> 0.974 at 0.151;
  efficiency unchanged (0.969 at 0.233); 1 and 4 workers: the hypervolume share up on every
  shipped record (efficiency_policies 0.957 -> 0.992 and 0.913 -> 0.948), the compute share up
  by at most 0.03.

And one from ASHA's promotion rule (Li et al. 2020: a trial moves up from rung k only while it
ranks in rung k's top 1/eta): a trial that goes on within the cutoff at a rung must also still
rank within the cutoff of each earlier rung that now holds eta records or more, among the
records there now (the decision then names that rung: `Decision.ranked_at`). Asynchronous
stopping judges a trial once, on arrival: the first trials to reach rung 1 go on against few
records, and the first to reach rung 3 goes on alone, so without this they trained in full
whatever rung 1 learned since. A first-front trial let on past the cutoff at its last chance
(above) is not judged again. In replay (30 seeds, default rungs 1,3, eta 3, 2 workers), from the
last-rung rule alone to both: efficiency_policies 0.974 [0.953] at 0.358 -> 0.953 [0.922] at
0.350, its re-recording 0.959 at 0.296 -> 0.959 at 0.288, its flushed record 0.951 at 0.329 ->
0.951 at 0.322; efficiency 0.969 at 0.233 -> 0.968 at 0.230, its re-recording 0.974 at 0.151 ->
0.976 at 0.163, its flushed record 0.984 at 0.228 -> 0.985 at 0.226. One worker: unchanged (no
other trial runs between a trial's rungs). Four workers: less compute and less hypervolume on
the efficiency_policies records (0.948 at 0.366 -> 0.941 at 0.348; its re-recording 0.920 ->
0.906, its flushed record 0.921 -> 0.912); on efficiency's, the compute share 0.02-0.03 lower
and the hypervolume share within 0.002.

Objectives at a rung (the study's objectives, estimated from the epochs up to the rung, with what
the study knows at the decision; the newcomer and every earlier record alike, so like is ranked
with like):
- val_accuracy: the best validation accuracy up to the rung plus the gain the study's complete
  trials made after it, fitted over their parameter values (gains.py): a trial that starts slow
  the way a complete one did (one-cycle LR's warm-up) is judged by where such runs end. With no
  complete trial yet, the best so far (the final metric is the best over epochs);
- train_time_s and time_to_best_s: the projected full-run training time (estimates.py).

Re-estimating the earlier records at each decision (rather than ranking against the estimates
stored with their decisions) lets them take in what was learned since: the gains, and AdaBatch's
later batch sizes measured in other curves. In replay (30 seeds, 2 workers, rungs 1,3,9, eta 3)
it took MO-ASHA on efficiency_policies' record from 0.891 [0.851, 0.932] of the grid's
hypervolume at 0.370 of its training seconds to 0.961 [0.938, 0.984] at 0.354, and on
efficiency's from 0.964 at 0.239 to 0.959 at 0.203 (README, "Replaying a recorded grid").
A stored decision keeps the estimates the newcomer was ranked with (records.Decision).

The rule's books in a run (`RungBook`, at the end): which rungs a trial waits at, and each
decision taken against the study's trials at that rung (records.TrialRecord.decision).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from dse.search.early_stop import EarlyStop
from dse.search.estimates import SizeScale, rung_values, size_scale
from dse.search.gains import Finished, GainModel
from dse.search.pareto import sorted_fronts
from dse.search.records import Decision, EpochPoint, TrialRecord
from dse.train.schedules import epoch_batch_sizes

# --- the rule ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RungRecord:
    number: int  # trial number
    values: tuple[float, ...]  # objective estimates at the rung, in the study's directions


def _epsilon_net(scaled: np.ndarray, front: list[int], numbers: list[int]) -> list[int]:
    """The front's points, best first objective first, then each farthest from those placed
    (exact ties: the lower trial number)."""
    points = scaled[front]
    trial = np.array([numbers[i] for i in front])
    first = min(range(len(front)), key=lambda k: (points[k, 0], trial[k]))
    order, left = [first], np.ones(len(front), dtype=bool)
    left[first] = False
    gaps = _distances(points, first)  # to the nearest point placed
    while left.any():
        candidates = np.flatnonzero(left)
        farthest = candidates[gaps[candidates] == gaps[candidates].max()]
        chosen = int(farthest[np.argmin(trial[farthest])])
        order.append(chosen)
        left[chosen] = False
        gaps = np.minimum(gaps, _distances(points, chosen))
    return [front[k] for k in order]


def _distances(points: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to point k; a value that is not a number puts a point last."""
    distances = np.linalg.norm(points - points[k], axis=1)
    return np.where(np.isnan(distances), -np.inf, distances)


@dataclass(frozen=True)
class _Rung:
    """A rung's records ready to rank: objectives to minimize, min-max scaled, trial numbers."""

    x: np.ndarray
    scaled: np.ndarray
    numbers: list[int]

    @classmethod
    def of(cls, records: Sequence[RungRecord], directions: Sequence[str]) -> _Rung:
        signs = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
        shape = (-1, len(directions))
        x = np.array([r.values for r in records], dtype=float).reshape(shape) * signs
        low, high = np.nanmin(x, axis=0), np.nanmax(x, axis=0)  # NaN: placed last (_distances)
        scaled = (x - low) / np.where(high > low, high - low, 1.0)
        return cls(x, scaled, [r.number for r in records])

    def ordered(self, front: list[int]) -> list[int]:
        """The trial numbers of a front's records, in epsilon-net order."""
        return [self.numbers[i] for i in _epsilon_net(self.scaled, front, self.numbers)]


def rung_fronts(records: Sequence[RungRecord], directions: Sequence[str]) -> list[list[int]]:
    """Trial numbers of a rung's records by front, best first (epsilon-net within each)."""
    rung = _Rung.of(records, directions)
    return [rung.ordered(front) for front in sorted_fronts(rung.x)]


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
    last: bool = False,
) -> Decision:
    """Does `newcomer` go on past `rung`, given the records of trials that reached it before?
    `late`: stopping at this rung saves little (EarlyStop.late); `last`: it is the run's last
    rung (EarlyStop.last). A newcomer on the rung's first front goes on whatever its position
    at a late rung, and at a last one that holds eta records or more (see the module doc)."""
    records = [r for r in earlier if r.number != newcomer.number] + [newcomer]
    ranked = _Rung.of(records, directions)
    fronts = sorted_fronts(ranked.x)
    # only the newcomer's front needs its epsilon-net order: the fronts before it all rank above
    k = next(k for k, front in enumerate(fronts) if len(records) - 1 in front)
    above = sum(len(front) for front in fronts[:k])
    position = above + ranked.ordered(fronts[k]).index(newcomer.number) + 1
    cutoff = math.floor(len(records) / eta + 1e-9) + 1  # (position - 1) / n <= 1 / eta
    return Decision(
        rung=rung,
        values=newcomer.values,
        proceed=position <= cutoff or (k == 0 and (late or (last and len(records) >= eta))),
        position=position,
        of=len(records),
        cutoff=cutoff,
    )


# --- the books of a run -----------------------------------------------------------------------


class RungBook:
    """MO-ASHA's bookkeeping in a run: the rungs a trial stops at, and each decision taken
    against the study's other trials that reached that rung (so a resumed or shared study
    ranks against every trial stored before)."""

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
        self.sizes: dict[int, tuple[int, ...]] = {}  # peers' batch sizes, by trial number

    def _values(
        self,
        number: int,
        params: Mapping[str, Any],
        curve: Sequence[EpochPoint],
        batch_sizes: Sequence[int],
        curves: Sequence[Sequence[EpochPoint]],
        scale: SizeScale,
        gains: GainModel,
    ) -> tuple[float, ...]:
        """The objectives the rule ranks a trial by, from its `curve` up to the rung."""
        if self.known is not None:
            return self.known(number)
        values = rung_values(self.metric_names, curve, batch_sizes, curves, scale)
        if "val_accuracy" not in self.metric_names:
            return values
        i = self.metric_names.index("val_accuracy")
        best = values[i]
        return (*values[:i], best + gains.gain(params, best), *values[i + 1 :])

    def rungs_for(self, epochs: int) -> tuple[int, ...]:
        """The rungs a run of `epochs` epochs waits at (none at its last epoch)."""
        return self.early_stop.rungs_for(epochs)

    def decide(
        self,
        rung: int,
        number: int,
        curve: Sequence[EpochPoint],
        batch_sizes: Sequence[int],
        trials: Sequence[FrozenTrial],
    ) -> Decision:
        """Rank trial `number` at `rung` among the study's `trials` that reached it before."""
        params = next((t.params for t in trials if t.number == number), {})
        # the earlier rungs rank again (rank): their records' batch sizes are read too
        first = min(self.rungs_for(len(batch_sizes)), default=rung)
        peers = peers_of(min(first, rung), number, trials, self.sizes)
        return self.rank(rung, number, curve, batch_sizes, peers, params)

    def rank(
        self,
        rung: int,
        number: int,
        curve: Sequence[EpochPoint],
        batch_sizes: Sequence[int],
        peers: Sequence[Peer],
        params: Mapping[str, Any],
    ) -> Decision:
        """The decision for trial `number` (with `params`) at `rung`, from its curve so far and
        its `peers` (the other trials, as they stand now). Live runs (`decide`) and replays
        (replay.py) both decide here, so a replay takes the decisions a run would. A trial
        that goes on within the cutoff at `rung` must also still rank within the cutoff of each
        earlier rung that now holds eta records or more, among the records there now (see the
        module doc)."""
        newcomer = Peer(number, curve, batch_sizes, params)
        decision = self.ranked(rung, newcomer, peers)
        for before in self.rungs_for(len(batch_sizes)):
            # a first-front trial let on past the cutoff at its last chance stays let on
            if not decision.proceed or decision.position > decision.cutoff or before >= rung:
                break
            again = self.ranked(before, replace(newcomer, curve=curve[:before]), peers)
            if not again.proceed and again.of >= self.early_stop.eta:
                decision = replace(again, rung=rung, ranked_at=before)
        return decision

    def ranked(self, rung: int, newcomer: Peer, peers: Sequence[Peer]) -> Decision:
        """The decision at `rung` alone: `newcomer` (its curve up to the rung) among the
        records that reached it."""
        curves = [p.curve for p in peers]
        # the batch size ratios the time projections read, each computed once for all records
        scale = functools.cache(lambda measured, wanted: size_scale(curves, measured, wanted))
        reached = [p for p in peers if len(p.curve) >= rung]
        learns = self.known is None and "val_accuracy" in self.metric_names
        finished = [
            Finished(p.params, [e.val_accuracy for e in p.curve])
            for p in peers
            if p.complete and learns
        ]
        gains = GainModel(rung, finished, [newcomer.params] + [p.params for p in reached])
        # Every trial that reached the rung is estimated now, from its curve up to the rung, as
        # the newcomer is: the projected times take in every curve run since its own decision
        # (AdaBatch's later batch sizes), and the accuracy the gain complete trials like it
        # made after the rung. A trial that passed the rung undecided (run before early
        # stopping was turned on, under other rungs, or ending at the rung) counts the same way.
        earlier = [
            RungRecord(
                p.number,
                self._values(
                    p.number, p.params, p.curve[:rung], p.batch_sizes, curves, scale, gains
                ),
            )
            for p in reached
        ]
        mine = newcomer.number, newcomer.params, newcomer.curve, newcomer.batch_sizes
        record = RungRecord(newcomer.number, self._values(*mine, curves, scale, gains))
        epochs, eta = len(newcomer.batch_sizes), self.early_stop.eta
        late, last = self.early_stop.late(rung, epochs), self.early_stop.last(rung, epochs)
        return decide(rung, record, earlier, self.directions, eta, late, last)


@dataclass(frozen=True)
class Peer:
    """Another trial as a rung decision sees it: its curve so far, its batch size per epoch
    (read only once it reached the rung), its parameters, and whether it ran every epoch."""

    number: int
    curve: Sequence[EpochPoint]
    batch_sizes: Sequence[int]
    params: Mapping[str, Any] = field(default_factory=dict)
    complete: bool = False


def peers_of(
    rung: int,
    number: int,
    trials: Sequence[FrozenTrial],
    sizes: dict[int, tuple[int, ...]] | None = None,
) -> list[Peer]:
    """The study's trials that count at a rung decision for trial `number`: running, complete or
    stopped ones, not a failed run's numbers, nor a queued retry's copy of them. `sizes`: batch
    sizes already read, by trial number (a trial's config does not change)."""
    live = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
    sizes = {} if sizes is None else sizes
    peers = []
    for trial in trials:
        if trial.state not in live or trial.number == number:
            continue
        record = TrialRecord(trial)
        curve = record.curve
        if len(curve) >= rung and trial.number not in sizes:
            config = record.trial_config()
            sizes[trial.number] = tuple(epoch_batch_sizes(config)) if config else ()
        batch_sizes = sizes.get(trial.number, ())  # read only where rank needs them
        complete = trial.state == TrialState.COMPLETE
        peers.append(Peer(record.number, curve, batch_sizes, trial.params, complete))
    return peers
