"""Throughput of a full CapsNet training step (standard size, batch 128) and some variants.

    python bench/step_throughput.py [--batch 128] [--steps 5] [--warmup 2] [--threads 2]

Prints a markdown table and, on the last line, the same as JSON. Variants are stepped in turn
in one process: compare them as ratios, not against numbers from another run.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

import torch

from dse.presets import preset
from dse.train.steptimer import run_bench

VARIANTS = {
    "baseline (routing 3, fp32)": [],
    "routing 1": ["model.routing_iterations=1"],
    "per_type sharing": ["model.weight_sharing=per_type"],
    "fastrcaps sharing + small decoder": ["model.weight_sharing=fastrcaps", "model.decoder=small"],
    "bf16 autocast": ["precision=bf16"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = {name: preset("baseline").with_overrides(sets) for name, sets in VARIANTS.items()}
    report = run_bench(configs, torch.device(args.device), args.batch, args.steps, args.warmup)
    timings = report.timings
    ceilings = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in report.ceilings.items())
    print(
        f"device {args.device}, threads {report.threads}, batch {args.batch}; ceiling {ceilings}\n"
    )
    print("| variant | ms/step | samples/s | GFLOP/s | ceiling share | peak MB | vs baseline |")
    print("|---|---|---|---|---|---|---|")
    for t in timings:
        print(
            f"| {t.name} | {t.ms_per_step:.0f} | {t.samples_per_s:.1f} | {t.gflops:.1f} | "
            f"{t.ceiling_share:.0%} | {t.peak_mem_mb:.0f} | {t.ratio:.2f}x |"
        )
    print(json.dumps([asdict(t) for t in timings]))


if __name__ == "__main__":
    main()
