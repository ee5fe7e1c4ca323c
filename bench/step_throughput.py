"""Throughput of a full CapsNet training step: the standard model and one change at a time.

    python bench/step_throughput.py [--batch 128] [--steps 5] [--warmup 2] [--threads 2]
        [--only NAME ...] [--set KEY=VALUE ...] [--out results/bench]

Variants: routing 1-3, the weight-sharing modes, the decoders, fp32 and bf16, each differing
from the standard model (baseline preset: routing 3, no sharing, full decoder, fp32) in one
setting. They are stepped in turn in one process, so compare them as ratios ("vs standard"),
not against numbers from another run. Prints a markdown table and, on the last line, the same
rows as JSON; with --out also writes step_throughput.md and .json there. `--set` applies to
every variant (CI runs it with small widths).
"""

from __future__ import annotations

import argparse

import torch

from dse.measure.bench import run_bench
from dse.output import print_table_and_json
from dse.presets import preset

VARIANTS = {
    "standard (routing 3, fp32)": [],
    "routing 1": ["model.routing_iterations=1"],
    "routing 2": ["model.routing_iterations=2"],
    "sharing per_type": ["model.weight_sharing=per_type"],
    "sharing fastrcaps": ["model.weight_sharing=fastrcaps"],
    "decoder small": ["model.decoder=small"],
    "decoder none": ["model.decoder=none"],
    "bf16 autocast": ["precision=bf16"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), help="Run these variants.")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE.")
    parser.add_argument("--out", default=None, help="Folder for step_throughput.md/.json.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [name for name in VARIANTS if not args.only or name in args.only]
    base = preset("baseline").with_overrides(args.sets)
    configs = {name: base.with_overrides(VARIANTS[name]) for name in names}
    report = run_bench(configs, torch.device(args.device), args.batch, args.steps, args.warmup)
    ceilings = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in report.ceilings.items())
    print(
        f"device {report.device}, threads {report.threads}, batch {args.batch}; "
        f"matmul ceiling {ceilings}; process peak RSS {report.rss_mb:.0f} MB\n"
    )
    rows = [
        {
            "variant": t.name,
            "ms_per_step": round(t.ms_per_step, 1),
            "samples_per_s": round(t.samples_per_s, 2),
            "gflops": round(t.gflops, 1),
            "ceiling_share": round(t.ceiling_share, 3),
            "peak_mem_mb": round(t.peak_mem_mb),
            "vs_standard": round(t.ratio, 3),
        }
        for t in report.timings
    ]
    print_table_and_json(rows, args.out, "step_throughput")


if __name__ == "__main__":
    main()
