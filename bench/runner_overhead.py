"""What the runner costs per trial beyond training: process start, storage writes, evaluation.

    DSE_DATA_DIR=... python bench/runner_overhead.py [--trials 30] [--workers 1]

Runs `dse run` as a separate process on trivially short trials (a tiny CapsNet, 100 images,
one step) into a fresh SQLite database, then reads the trials back. Per trial: wall time in the
database (asked -> told) minus train_time_s (which excludes evaluation and checkpoints), and,
for the whole run, (elapsed - sum of train_time_s) / trials, which adds process start. Prints a
markdown table and, on the last line, the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from worktree import code_env

from dse.search.records import TrialRecord


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "dse", "run", "--space", "overhead.yaml", "-q"]
        command += ["--n-trials", str(args.trials)]
        command += ["--workers", str(args.workers), "--sampler", "random"]
        start = time.monotonic()
        subprocess.run(command, cwd=tmp, check=True, env=code_env(root))
        elapsed = time.monotonic() - start
        storage = f"sqlite:///{tmp}/results/dse.db"
        trials = optuna.load_study(study_name="overhead", storage=storage).get_trials()
    train = [TrialRecord(t).metrics["train_time_s"] for t in trials]
    wall = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    per_trial = [w - s for w, s in zip(wall, train, strict=True)]
    row = {
        "trials": len(trials),
        "workers": args.workers,
        "median_train_time_s": statistics.median(train),
        "median_trial_wall_s": statistics.median(wall),
        "median_overhead_per_trial_s": statistics.median(per_trial),
        "run_elapsed_s": elapsed,
        "run_overhead_per_trial_s": (elapsed - sum(train)) / len(trials) * args.workers,
    }
    print("| " + " | ".join(row) + " |")
    print("|" + "---|" * len(row))
    print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()))
    print(json.dumps(row))


if __name__ == "__main__":
    main()
