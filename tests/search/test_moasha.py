"""The MO-ASHA rung rule on synthetic learning curves (exact decisions, no training), and on a
live study resumed with early stopping turned on."""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, replace

import numpy as np
import optuna

from dse.search.early_stop import EarlyStop
from dse.search.forms import Decision
from dse.search.gains import Finished, GainModel
from dse.search.moasha import (
    EpochPoint,
    Peer,
    RungBook,
    RungRecord,
    decide,
    rung_fronts,
    rung_order,
    rung_values,
)
from dse.search.options import RunOptions
from dse.search.pareto import dominates
from dse.search.records import Placement, TrialRecord
from dse.search.runner import run_study
from dse.space import load_space
from tests.conftest import load_study, tiny_config, write_space

TIME_ACC = ["minimize", "maximize"]


def test_two_objectives_arrivals_one_by_one():
    """Each newcomer ranked against the records before it; with eta 3 it goes on when at most a
    third of the n records rank above it: position <= n // 3 + 1."""
    arrivals = [
        (0, (10, 0.50)),  # alone at the rung: goes on
        (1, (20, 0.60)),  # front {0, 1}; epsilon-net seeds with the fastest (0): 1 is 2nd of 2,
        #                   and 1 of 2 above it is more than a third
        (2, (5, 0.70)),  # dominates both: 1st
        (3, (12, 0.40)),  # dominated by 0 and 2: last of 4 (cutoff 4 // 3 + 1 = 2)
        (4, (30, 0.90)),  # front {2, 4}: 2 (faster) first, 4 is 2nd of 5: 1 of 5 above it
        (5, (3, 0.65)),  # front {5, 2, 4}: 5 (fastest) first
    ]
    expected = [(True, 1, 1), (False, 2, 2), (True, 1, 3), (False, 4, 4), (True, 2, 5)]
    expected.append((True, 1, 6))
    records: list[RungRecord] = []
    for (number, values), (proceed, position, of) in zip(arrivals, expected, strict=True):
        decision = decide(1, RungRecord(number, values), records, TIME_ACC, eta=3)
        assert (decision.proceed, decision.position, decision.of) == (proceed, position, of)
        records.append(RungRecord(number, values))
    # scaled over the 6 records, 4 (the most accurate) is farther from 5 than 2 is: 5, 4, 2
    assert rung_order(records, TIME_ACC) == [5, 4, 2, 0, 1, 3]


def test_three_objectives_fronts_then_epsilon_net():
    directions = ["minimize", "maximize", "minimize"]  # time, accuracy, params
    records = [
        RungRecord(0, (1, 0.5, 10)),  # the fastest: seeds the first front
        RungRecord(1, (2, 0.6, 10)),  # the most accurate: farthest from 0 once scaled (0.71)
        RungRecord(2, (2, 0.5, 5)),  # the smallest: 0.60 from 0
        RungRecord(3, (3, 0.4, 20)),  # dominated by 0
    ]
    assert rung_order(records, directions) == [0, 1, 2, 3]
    for eta, going_on in ((5, {0}), (3, {0, 1}), (2, {0, 1, 2})):
        for r in records:
            others = [o for o in records if o.number != r.number]
            decision = decide(3, r, others, directions, eta)
            assert decision.proceed == (r.number in going_on), (eta, r.number)
            assert decision.cutoff == 4 // eta + 1


def test_fronts_of_many_records_match_pairwise_dominance():
    """The vectorised sort against the definition, on 400 records with ties and duplicates in
    3 objectives: each front is what no remaining record dominates, in trial order."""
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, size=(400, 3)).astype(float)
    directions = ["minimize", "maximize", "minimize"]
    records = [RungRecord(i, tuple(v)) for i, v in enumerate(values)]
    fronts = rung_fronts(records, directions)
    x = values * np.array([1.0, -1.0, 1.0])
    remaining = list(range(len(x)))
    for front in fronts:
        expected = [i for i in remaining if not any(dominates(x[j], x[i]) for j in remaining)]
        assert sorted(front) == expected
        remaining = [i for i in remaining if i not in expected]
    assert not remaining and len(fronts) > 3
    # within a front: the best first objective first (ties: lower number), then the farthest
    first = fronts[0]
    assert first[0] == min(first, key=lambda i: (x[i, 0], i))


def test_a_decision_among_many_records_is_quick():
    """20,000 records at a rung: one decision in well under a second (it took minutes when the
    fronts were peeled from one dominance matrix)."""
    rng = np.random.default_rng(1)
    earlier = [RungRecord(i, (rng.random(), rng.random())) for i in range(20_000)]
    start = time.perf_counter()
    decision = decide(1, RungRecord(20_000, (0.5, 0.5)), earlier, TIME_ACC, eta=3)
    assert time.perf_counter() - start < 5.0
    assert decision.of == 20_001 and 1 <= decision.position <= 20_001


def test_a_record_that_is_not_a_number_is_ranked_not_crashed_on():
    """A NaN objective dominates nothing and is dominated by nothing: it sits in the first
    front, placed after every comparable point."""
    records = [
        RungRecord(0, (1.0, 0.5)),
        RungRecord(1, (2.0, float("nan"))),
        RungRecord(2, (3, 0.9)),
    ]
    assert rung_order(records, TIME_ACC) == [0, 2, 1]


def test_a_late_rung_lets_its_first_front_go_on():
    """Where stopping saves less than a 1/eta share of the run, a newcomer no record dominates
    goes on behind the cutoff; a dominated one is still stopped, and other rungs are as before."""
    stop = EarlyStop((1, 3, 9), 3.0)
    assert stop.late(9, 10) and not stop.late(9, 16) and not stop.late(3, 10)
    assert not stop.late(2, 3) and not stop.late(10, 10) and EarlyStop((8,), 3.0).late(8, 10)
    fast = RungRecord(0, (11.7, 0.947))
    accurate = RungRecord(1, (15.5, 0.968))  # on the front, 2nd of 2 behind the fastest
    dominated = RungRecord(2, (16.0, 0.940))
    paper = decide(9, accurate, [fast], TIME_ACC, 3.0)
    assert (paper.proceed, paper.position, paper.cutoff) == (False, 2, 1)
    late = decide(9, accurate, [fast], TIME_ACC, 3.0, late=True)
    assert (late.proceed, late.position, late.of, late.cutoff) == (True, 2, 2, 1)
    assert not decide(9, dominated, [fast, accurate], TIME_ACC, 3.0, late=True).proceed
    assert decide(9, fast, [accurate], TIME_ACC, 3.0, late=True).proceed  # 1st: as before

    # the runner's and the replay's path: the run's epochs are its batch sizes' count
    def curve(epoch_time: float, accuracy: float) -> list[EpochPoint]:
        return [EpochPoint(e, 32, epoch_time, epoch_time * e, accuracy) for e in range(1, 10)]

    book = RungBook(stop, ["train_time_s", "val_accuracy"], TIME_ACC)
    peer = Peer(0, curve(1.0, 0.947), (32,) * 10)
    for epochs, proceed in ((10, True), (16, False)):
        peers = [replace(peer, batch_sizes=(32,) * epochs)]
        decision = book.rank(9, 1, curve(1.5, 0.968), (32,) * epochs, peers, {})
        assert (decision.proceed, decision.position, decision.of) == (proceed, 2, 2)


def test_a_last_rung_lets_its_first_front_go_on_once_it_holds_eta_records():
    """At a run's last rung, a newcomer no record dominates goes on behind the cutoff once the
    rung holds eta records (efficiency_policies' front: the middle point, third of 4, was
    stopped); below eta records, and for a dominated newcomer, the cutoff stands."""
    fast = RungRecord(0, (11.7, 0.947))
    accurate = RungRecord(1, (15.5, 0.968))
    middle = RungRecord(2, (12.3, 0.958))  # on the front between the two
    slower = RungRecord(3, (16.7, 0.961))  # dominated by `accurate`
    paper = decide(3, middle, [slower, accurate, fast], TIME_ACC, 3.0)
    assert (paper.proceed, paper.position, paper.of, paper.cutoff) == (False, 3, 4, 2)
    last = decide(3, middle, [slower, accurate, fast], TIME_ACC, 3.0, last=True)
    assert (last.proceed, last.position, last.of, last.cutoff) == (True, 3, 4, 2)
    assert not decide(3, middle, [fast], TIME_ACC, 3.0, last=True).proceed  # 2 < eta records
    assert decide(3, middle, [accurate, fast], TIME_ACC, 3.0, last=True).proceed  # 3 records
    assert not decide(3, slower, [middle, accurate, fast], TIME_ACC, 3.0, last=True).proceed
    # the runner's and the replay's path: rung 3 is the last of a 10-epoch run's rungs (1,3),
    # not of a 27-epoch run's (1,3,9)
    book = RungBook(EarlyStop(), ["train_time_s", "val_accuracy"], TIME_ACC)

    def curve(epoch_time: float, accuracy: float) -> list[EpochPoint]:
        return [EpochPoint(e, 32, epoch_time, epoch_time * e, accuracy) for e in (1, 2, 3)]

    for epochs, proceed in ((10, True), (27, False)):
        sizes = (32,) * epochs
        peers = [
            Peer(n, curve(t, acc), sizes)
            for n, t, acc in ((0, 1.0, 0.947), (1, 1.5, 0.968), (3, 1.65, 0.961))
        ]
        decision = book.rank(3, 2, curve(1.05, 0.958), sizes, peers, {})
        assert (decision.proceed, decision.position, decision.of) == (proceed, 3, 4)


def test_a_trial_going_on_must_still_rank_within_each_earlier_rungs_cutoff():
    """ASHA's promotion rule: a trial that passed a young rung 1 goes on at rung 3 only while it
    still ranks within rung 1's cutoff among the records there now; stopped otherwise, with the
    decision saying which rung's records stopped it (and stored so)."""
    book = RungBook(EarlyStop(), ["train_time_s", "val_accuracy"], TIME_ACC)
    sizes = (32,) * 10  # rungs 1,3

    def curve(epoch_time: float, accuracy: float, epochs: int) -> list[EpochPoint]:
        return [
            EpochPoint(e, 32, epoch_time, epoch_time * e, accuracy) for e in range(1, epochs + 1)
        ]

    newcomer = curve(1.0, 0.90, 3)  # first at rung 3: it goes on there whatever
    better = [Peer(n, curve(0.9, 0.95, 1), sizes) for n in range(1, 7)]  # reached rung 1 since
    worse = [Peer(n, curve(1.1, 0.85, 1), sizes) for n in range(1, 7)]
    assert book.rank(3, 0, newcomer, sizes, worse, {}).proceed
    stopped = book.rank(3, 0, newcomer, sizes, better, {})
    assert (stopped.proceed, stopped.rung, stopped.ranked_at) == (False, 3, 1)
    assert (stopped.position, stopped.of, stopped.cutoff) == (7, 7, 3)
    assert Decision.from_attr(3, stopped.to_attr()) == stopped
    old = {k: v for k, v in stopped.to_attr().items() if k != "ranked_at"}  # stored before
    assert Decision.from_attr(3, old).ranked_at is None


def test_the_runners_path_reads_the_batch_sizes_an_earlier_rung_ranks_with():
    """RungBook.decide (the runner's, from the study) ranks again at rung 1 with the batch sizes
    of trials that reached only rung 1: the same decision as rank with every peer's sizes (the
    replay's). Without their sizes their projected time is one epoch's, 10x too fast."""
    config = tiny_config("epochs=10").model_dump(mode="json")
    study = optuna.create_study(directions=TIME_ACC)

    def running(epochs: int, epoch_s: float, accuracy: float) -> optuna.Trial:
        trial = study.ask()
        record = TrialRecord(trial)
        record.start(config, Placement("cpu#0", "cpu"))
        points = range(1, epochs + 1)
        record.set_curve([EpochPoint(e, 50, epoch_s, epoch_s * e, accuracy) for e in points])
        return trial

    newcomer = running(3, 1.0, 0.90)  # the first at rung 3, past rung 1 when it was young
    for _ in range(6):  # slower and more accurate: no record dominates another at rung 1
        running(1, 1.2, 0.95)
    sizes = (50,) * 10
    curve = TrialRecord(study.trials[0]).curve
    live = RungBook(EarlyStop(), ["train_time_s", "val_accuracy"], TIME_ACC)
    decided = live.decide(3, newcomer.number, curve, sizes, study.get_trials())
    peers = [Peer(t.number, TrialRecord(t).curve, sizes) for t in study.trials[1:]]
    replayed = RungBook(EarlyStop(), ["train_time_s", "val_accuracy"], TIME_ACC)
    assert decided == replayed.rank(3, newcomer.number, curve, sizes, peers, {})
    assert decided.proceed  # the fastest at rung 1, at every record's real run length


# --- a rung schedule driven by synthetic learning curves, two workers --------------------------


@dataclass(frozen=True)
class Curve:
    epoch_time: float  # seconds per epoch (fixed batch)
    accuracy: tuple[float, ...]  # validation accuracy after each epoch


def simulate(curves: list[Curve], workers: int, rungs: tuple[int, ...], eta: float):
    """Event-driven: each free worker takes the next trial; rung events in time order.

    Returns the rung decisions in the order they were made, as (trial, rung, went on), and the
    epoch each trial ended at.
    """
    stop = EarlyStop(rungs, eta)
    epochs = len(curves[0].accuracy)
    events: list[tuple[float, int, int]] = []  # (time, trial, epoch reached)
    records: dict[int, list[RungRecord]] = {r: [] for r in rungs}
    decisions, ended, next_trial = [], {}, 0
    for _ in range(workers):
        heapq.heappush(events, (curves[next_trial].epoch_time, next_trial, 1))
        next_trial += 1
    while events:
        now, number, epoch = heapq.heappop(events)
        curve = curves[number]
        points = [
            EpochPoint(e, 32, curve.epoch_time, curve.epoch_time * e, curve.accuracy[e - 1])
            for e in range(1, epoch + 1)
        ]
        going_on = epoch < epochs
        if stop.decides_at(epoch, epochs):
            values = rung_values(["train_time_s", "val_accuracy"], points, [32] * epochs)
            decision = decide(epoch, RungRecord(number, values), records[epoch], TIME_ACC, eta)
            records[epoch].append(RungRecord(number, values))
            decisions.append((number, epoch, decision.proceed))
            going_on = decision.proceed
        if going_on:
            heapq.heappush(events, (now + curve.epoch_time, number, epoch + 1))
            continue
        ended[number] = epoch
        if next_trial < len(curves):  # the worker takes the next trial
            heapq.heappush(events, (now + curves[next_trial].epoch_time, next_trial, 1))
            next_trial += 1
    return decisions, ended


def test_workers_finishing_out_of_order():
    curves = [
        Curve(3.0, (0.50, 0.70, 0.80)),  # slow: reaches rung 1 after trial 1 has passed rung 2
        Curve(1.0, (0.40, 0.45, 0.50)),
        Curve(2.0, (0.60, 0.75, 0.85)),
        Curve(1.0, (0.20, 0.30, 0.35)),
        Curve(2.5, (0.45, 0.50, 0.55)),
    ]
    decisions, ended = simulate(curves, workers=2, rungs=(1, 2), eta=3)
    assert decisions == [
        (1, 1, True),  # t=1: alone at rung 1
        (1, 2, True),  # t=2: alone at rung 2; trial 1 completes at t=3
        (0, 1, False),  # t=3: {1: (3 s, .40), 0: (9 s, .50)}: 2nd of 2, the fastest seeds
        (3, 1, False),  # t=4: dominated by trial 1 (same time, less accurate): 3rd of 3
        (2, 1, True),  # t=5: front {1, 2}: 2nd of 4 records, cutoff 2
        (4, 1, False),  # t=6.5: dominated by trial 2: behind the front {1, 2}, cutoff 2
        (2, 2, False),  # t=7: rung 2 holds {1, 2}: 2nd of 2, cutoff 1, trial 1 seeds
    ]
    assert ended == {1: 3, 0: 1, 3: 1, 2: 2, 4: 1}


def test_the_same_curves_in_another_order_decide_otherwise():
    """Asynchronous: a trial is judged by who reached the rung before it, not after."""
    fast = Curve(1.0, (0.20, 0.30, 0.40))
    good = Curve(1.0, (0.60, 0.70, 0.80))
    decisions, _ = simulate([fast, good], workers=1, rungs=(1,), eta=3)
    assert decisions == [(0, 1, True), (1, 1, True)]  # good dominates fast: 1st of 2
    decisions, _ = simulate([good, fast], workers=1, rungs=(1,), eta=3)
    assert decisions == [(0, 1, True), (1, 1, False)]


def test_trials_run_before_early_stopping_was_on_count_at_its_rungs(workdir):
    """A study of 3 trials run in full without early stopping, resumed with MO-ASHA: the next
    trial is ranked at rung 1 against those 3 (their estimates from their curves at epoch 1,
    the accuracy plus the gain the complete trials show after it), not taken as the rung's
    first arrival."""
    space = load_space(str(write_space(workdir, epochs=2, lrs="[0.0003, 0.001, 0.003]")))
    plain = RunOptions(storage="sqlite:///m.db", sampler="grid", n_trials=3, workers=1)
    run_study(space, plain)
    run_study(space, replace(plain, n_trials=4, early_stop=EarlyStop((1,), 3.0)))
    trials = load_study("sqlite:///m.db", "tiny").get_trials()
    assert [TrialRecord(t).decisions() for t in trials[:3]] == [[], [], []]
    (decision,) = TrialRecord(trials[3]).decisions()
    assert decision.rung == 1 and decision.of == 4 and decision.cutoff == 2
    names = space.metric_names
    accuracy = names.index("val_accuracy")
    done = [Finished(t.params, [p.val_accuracy for p in TrialRecord(t).curve]) for t in trials[:3]]
    gains = GainModel(1, done, [t.params for t in trials])
    earlier = []
    for trial in trials[:3]:
        values = list(rung_values(names, TrialRecord(trial).curve[:1], (50, 50)))
        values[accuracy] += gains.gain(trial.params, values[accuracy])
        earlier.append(RungRecord(trial.number, tuple(values)))
    assert any(
        e.values != rung_values(names, TrialRecord(t).curve[:1], (50, 50))
        for e, t in zip(earlier, trials, strict=False)
    )
    # rung 1 is the 2-epoch run's last: a first-front newcomer goes on past the cutoff there
    stop = EarlyStop((1,), 3.0)
    late, last = stop.late(1, 2), stop.last(1, 2)
    assert last
    expected = decide(1, RungRecord(3, decision.values), earlier, space.directions, 3.0, late, last)
    assert (decision.position, decision.proceed) == (expected.position, expected.proceed)
