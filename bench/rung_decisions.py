"""How long one MO-ASHA decision takes in a big study: the runner decides while the trial's worker
waits, ranking the newcomer against every trial that reached the rung (re-estimated each time).

    python bench/rung_decisions.py [--trials 1000] [--epochs 50] [--rounds 3]

Synthetic study: `--trials` trials with AdaBatch-like batch sizes (16 for 3 epochs, then 64),
stopped at random rungs of 1,3,9,27 or complete, three parameters (two categorical, one
sampled). Prints, per rung, how many records it ranks and the median seconds of a decision;
the last line is the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from dse.search.early_stop import EarlyStop
from dse.search.forms import EpochPoint
from dse.search.moasha import Peer, RungBook

RUNGS = (1, 3, 9, 27)


def _curve(rng: random.Random, epochs: int, sizes: tuple[int, ...]) -> list[EpochPoint]:
    points, elapsed = [], 0.0
    for epoch in range(1, epochs + 1):
        seconds = 1.0 + rng.random()
        elapsed += seconds
        accuracy = min(1.0, 0.5 + 0.01 * epoch + 0.1 * rng.random())
        points.append(EpochPoint(epoch, sizes[epoch - 1], seconds, elapsed, accuracy))
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(0)
    sizes = (16,) * 3 + (64,) * (args.epochs - 3)
    peers = []
    for number in range(args.trials):
        ran = rng.choice([*RUNGS, args.epochs])
        params = {"lr": rng.choice([1e-3, 3e-3]), "decoder": rng.choice(["small", "none"])}
        params["momentum"] = rng.random()  # sampled: left out of the gain model
        curve = _curve(rng, ran, sizes)
        peers.append(Peer(number, curve, sizes, params, complete=ran == args.epochs))
    book = RungBook(
        EarlyStop(RUNGS, 3.0), ["train_time_s", "val_accuracy"], ["minimize", "maximize"]
    )
    newcomer = {"lr": 1e-3, "decoder": "none", "momentum": 0.5}
    rows = []
    for rung in RUNGS:
        curve = _curve(rng, rung, sizes)
        seconds = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            decision = book.rank(rung, args.trials, curve, sizes, peers, newcomer)
            seconds.append(time.perf_counter() - start)
        rows.append({"rung": rung, "records": decision.of, "seconds": statistics.median(seconds)})
    print("| rung | records ranked | seconds per decision |\n|---|---|---|")
    for row in rows:
        print(f"| {row['rung']} | {row['records']} | {row['seconds']:.3f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
