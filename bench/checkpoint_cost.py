"""What a per-epoch checkpoint costs at the standard model: MB, ms per write, share of an epoch.

    python bench/checkpoint_cost.py [--writes 5] [--steps 3] [--warmup 1] [--batch 128]
        [--threads N] [--train-size 55000] [--dir results/bench-checkpoint]
        [--set KEY=VALUE ...] [--out results/bench]

Builds the standard CapsNet (the baseline preset: 8.2M parameters) with Adam and takes a few
training steps on a random batch (Adam's state then exists; the timed steps give ms per step).
Then writes the checkpoint the trainer writes after each epoch (dse.train.resume: weights,
Adam's state, every RNG state, a 10-epoch history) `--writes` times into `--dir` (by default
on the disk that holds results/), through the trainer's own atomic path (temp file, fsync,
rename, folder fsync), and reads it back after each write.

Two cases: the best weights are the model's own (validation accuracy improved in the epoch:
the usual case, the weights are stored once), and an earlier epoch's best (stored beside).

The epoch it is compared with: full MNIST holds 55,000 training images after the 5,000-image
validation split, at batch 128 that is 430 steps; the epoch's training time is extrapolated
as 430 x the median step measured here. Validation time is left out, so the share is an upper
bound. Prints the CPU flags and the load average (other processes slow both the steps and the
writes), a markdown table, and on the last line the rows as JSON.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch

from dse.measure.bench import StepRunner
from dse.model import summarize
from dse.output import print_table_and_json
from dse.presets import preset
from dse.train.environment import cpu_flags
from dse.train.result import EpochRecord
from dse.train.resume import ResumeFile, SeedCheckpoints, read_state, rng_states

EPOCHS_DONE = 10  # the history the checkpoint carries


def _progress(model: torch.nn.Module, best_is_current: bool, steps: int) -> dict:
    """The trainer's progress after EPOCHS_DONE epochs, as a checkpoint holds it."""
    record = EpochRecord(1, 128, steps, 1e-3, 1e-3, 0.1, {"margin": 0.09}, 0.99, 600.0)
    history = [asdict(record) | {"epoch": e + 1} for e in range(EPOCHS_DONE)]
    best_state = None
    if not best_is_current:  # an earlier epoch's weights, kept on the CPU as the trainer does
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_epoch = EPOCHS_DONE if best_is_current else EPOCHS_DONE - 1
    return {
        "history": history,
        "train_time": 6000.0,
        "best": [0.99, best_epoch, 5400.0],
        "best_state": best_state,
        "samples_seen": 55000 * EPOCHS_DONE,
        "step": steps * EPOCHS_DONE,
    }


def _time_writes(stepper: StepRunner, path: Path, best_is_current: bool, writes: int, steps: int):
    """Median and max ms of `writes` checkpoint writes, median ms of reading one back, MB."""
    generator = torch.Generator().manual_seed(0)
    random.seed(0)
    file = ResumeFile(path)
    config = stepper.config.to_dict()
    progress = _progress(stepper.model, best_is_current, steps)
    write_ms, read_ms = [], []
    for _ in range(writes):
        rng = rng_states(generator, stepper.device)
        start = time.perf_counter()
        SeedCheckpoints(file, config).write(
            EPOCHS_DONE, stepper.model, stepper.optimizer, rng, progress
        )
        write_ms.append(1000 * (time.perf_counter() - start))
        assert not file.failed, f"cannot write {path}"
        start = time.perf_counter()
        read_state(path)
        read_ms.append(1000 * (time.perf_counter() - start))
    size_mb = path.stat().st_size / 1e6
    file.remove()
    return statistics.median(write_ms), max(write_ms), statistics.median(read_ms), size_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="Timed training steps.")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--train-size", type=int, default=55000, help="Images in an epoch.")
    parser.add_argument("--dir", default="results/bench-checkpoint", help="Where to write.")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE.")
    parser.add_argument("--out", default=None, help="Folder for checkpoint_cost.md/.json.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = preset("baseline").with_overrides(args.sets)
    stepper = StepRunner("standard", config, torch.device("cpu"), args.batch)
    for _ in range(max(1, args.warmup)):  # at least one: Adam's state must exist
        stepper.step()
    step_s = statistics.median(stepper.step() for _ in range(args.steps))
    steps_per_epoch = math.ceil(args.train_size / args.batch)
    epoch_s = step_s * steps_per_epoch
    flags = sorted(cpu_flags() & {"avx2", "avx512_bf16", "amx_bf16"})
    print(
        f"CPU flags {' '.join(flags) or '-'}, threads {torch.get_num_threads()}, load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {summarize(stepper.model).params:,} "
        f"parameters; {1000 * step_s:.0f} ms per step at batch {args.batch} x "
        f"{steps_per_epoch} steps = {epoch_s:.0f} s per epoch (extrapolated)\n"
    )
    path = Path(args.dir) / "checkpoint.pt"
    rows = []
    cases = (("best = the epoch's weights", True), ("best of an earlier epoch", False))
    for case, current in cases:
        write_ms, worst_ms, read_ms, size_mb = _time_writes(
            stepper, path, current, args.writes, steps_per_epoch
        )
        rows.append(
            {
                "case": case,
                "mb": round(size_mb, 1),
                "write_ms": round(write_ms),
                "write_ms_max": round(worst_ms),
                "read_ms": round(read_ms),
                "epoch_s": round(epoch_s, 1),
                "share_of_epoch_pct": round(100 * write_ms / 1000 / epoch_s, 3),
            }
        )
    print_table_and_json(rows, args.out, "checkpoint_cost")


if __name__ == "__main__":
    main()
