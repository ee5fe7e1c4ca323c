"""Throughput of a full CapsNet training step: the standard model and one change at a time; the
issue-18 model sizes in fp32 and bf16; and either against the code of another git commit.

    python bench/step_throughput.py [--batch 128] [--steps 5] [--warmup 2] [--threads 2]
        [--only NAME ...] [--set KEY=VALUE ...] [--out results/bench]
    python bench/step_throughput.py --sizes [--against REF] [--rounds 3] ...

Variants (default): routing 1-3, the weight-sharing modes, the decoders, fp32 and bf16, each
differing from the standard model (baseline preset: routing 3, no sharing, full decoder, fp32)
in one setting, at --batch. They are stepped in turn in one process, so compare them as ratios
("vs standard"), not against numbers from another run.

--sizes: the three models CPU studies train (the standard CapsNet at batch 128; quick.yaml's
width at 64; efficiency.yaml's smallest at 32), each in fp32 and bf16: samples/s, the share of
the measured matmul ceiling of its precision, and bf16 over fp32. The first line says what bf16
runs on (AMX, AVX512-BF16, or nothing: converted to fp32).

--against REF [--precisions fp32,bf16]: the same rows (of those precisions; fp32 alone where
the CPU has no bf16 unit and bf16 steps take minutes) measured with the code of git commit REF
(a temporary worktree) and with this checkout, in alternating rounds (REF then this, this then
REF, ...), each round a fresh process per side, so drift of the machine hits both alike; the
medians over rounds and their ratio ("speed-up"). Both sides run the rows through
`dse.measure.bench.run_bench`. `--now-set KEY=VALUE` applies to this checkout's side only:
`--now-set compile=true` measures the compiled step (which REF's code may not know) against
REF's eager one, the first, compiling step left out as a warm-up.

Prints a markdown table and, on the last line, the same rows as JSON; with --out also writes
step_throughput.md and .json there. `--set` applies to every row (CI runs it with small widths).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from worktree import add_now_set, check_now_set, checkout_of, code_env

ROOT = Path(__file__).resolve().parents[1]

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

SIZES = {  # name: (overrides of the baseline preset, batch)
    "standard CapsNet": ([], 128),
    "quick.yaml's width": (["model.conv_channels=32", "model.primary_types=8"], 64),
    "efficiency's smallest": (
        [
            "model.conv_channels=16",
            "model.primary_types=4",
            "model.primary_dim=4",
            "model.class_dim=8",
            "model.routing_iterations=1",
            "model.decoder=small",
        ],
        32,
    ),
}

# Run by each side of --against with its own code: only APIs both sides have.
MEASURE = """
import json, sys, torch
from dse.measure.bench import run_bench
from dse.presets import preset
rows, steps, warmup, threads = json.loads(sys.argv[1])
if threads:
    torch.set_num_threads(threads)
out = []
for name, overrides, batch in rows:
    config = preset("baseline").with_overrides(overrides)
    t = run_bench({name: config}, torch.device("cpu"), batch, steps, warmup).timings[0]
    out.append({"row": name, "samples_per_s": t.samples_per_s, "ceiling_share": t.ceiling_share})
print(json.dumps(out))
"""


def size_rows(sets: list[str], precisions: list[str]) -> list[tuple[str, list[str], int]]:
    """(name, overrides, batch) of each model size in each precision."""
    return [
        (f"{name} ({batch}) {precision}", [*overrides, *sets, f"precision={precision}"], batch)
        for name, (overrides, batch) in SIZES.items()
        for precision in precisions
    ]


def measure_sizes(args: argparse.Namespace) -> list[dict]:
    import torch

    from dse.measure.bench import run_bench
    from dse.presets import preset

    rows = []
    for name, (overrides, batch) in SIZES.items():
        base = preset("baseline").with_overrides([*overrides, *args.sets])
        configs = {p: base.with_overrides([f"precision={p}"]) for p in ("fp32", "bf16")}
        report = run_bench(configs, torch.device(args.device), batch, args.steps, args.warmup)
        fp32, bf16 = report.timings
        rows.append(
            {
                "model": f"{name} ({batch})",
                "fp32_samples_per_s": round(fp32.samples_per_s, 1),
                "fp32_ceiling_share": round(fp32.ceiling_share, 3),
                "bf16_vs_fp32": round(bf16.samples_per_s / fp32.samples_per_s, 3),
                "bf16_ceiling_share": round(bf16.ceiling_share, 3),
            }
        )
    return rows


def run_side(tree: Path, rows: list, args: argparse.Namespace) -> dict[str, dict]:
    """One process with `tree`'s code measuring `rows`; its result by row name."""
    payload = json.dumps([rows, args.steps, args.warmup, args.threads])
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, payload],
        cwd=tree,
        env=code_env(tree),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"measuring with the code at {tree} failed:\n{done.stderr[-2000:]}")
    return {r["row"]: r for r in json.loads(done.stdout.strip().splitlines()[-1])}


def against(args: argparse.Namespace) -> list[dict]:
    """The size rows with REF's code and with this checkout's, rounds alternating."""
    precisions = args.precisions.split(",")
    rows = size_rows(args.sets, precisions)
    rows_now = size_rows([*args.sets, *args.now_sets], precisions)  # named as `rows`
    with checkout_of(ROOT, args.against) as ref_tree:
        assert ref_tree is not None
        results: dict[str, list[dict]] = {"ref": [], "now": []}
        for round_ in range(args.rounds):
            sides = [("ref", ref_tree, rows), ("now", ROOT, rows_now)]
            for side, tree, measured in sides if round_ % 2 == 0 else sides[::-1]:
                results[side].append(run_side(tree, measured, args))
    table = []
    for name, _, _ in rows:
        ref = statistics.median(r[name]["samples_per_s"] for r in results["ref"])
        now = statistics.median(r[name]["samples_per_s"] for r in results["now"])
        share = statistics.median(r[name]["ceiling_share"] for r in results["now"])
        table.append(
            {
                "row": name,
                f"{args.against}_samples_per_s": round(ref, 1),
                "now_samples_per_s": round(now, 1),
                "speed_up": round(now / ref, 3),
                "now_ceiling_share": round(share, 3),
            }
        )
    return table


def measure_variants(args: argparse.Namespace) -> list[dict]:
    import torch

    from dse.measure.bench import run_bench
    from dse.presets import preset

    names = [name for name in VARIANTS if not args.only or name in args.only]
    base = preset("baseline").with_overrides(args.sets)
    configs = {name: base.with_overrides(VARIANTS[name]) for name in names}
    report = run_bench(configs, torch.device(args.device), args.batch, args.steps, args.warmup)
    ceilings = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in report.ceilings.items())
    print(
        f"device {report.device}, threads {report.threads}, batch {args.batch}; "
        f"matmul ceiling {ceilings}; process peak RSS {report.rss_mb:.0f} MB\n"
    )
    return [
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), help="Run these variants.")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE.")
    add_now_set(parser)
    parser.add_argument("--sizes", action="store_true", help="The three model sizes instead.")
    parser.add_argument("--against", metavar="REF", help="Also measure git commit REF's code.")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds (--against).")
    parser.add_argument("--precisions", default="fp32,bf16", help="Rows of --against.")
    parser.add_argument("--out", default=None, help="Folder for step_throughput.md/.json.")
    args = parser.parse_args()
    check_now_set(parser, args)
    import torch

    from dse.output import print_table_and_json
    from dse.train.environment import bf16_hardware

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.against:
        rows = against(args)
    elif args.sizes:
        print(f"bf16: {bf16_hardware(torch.device(args.device))}\n")
        rows = measure_sizes(args)
    else:
        rows = measure_variants(args)
    print_table_and_json(rows, args.out, "step_throughput")


if __name__ == "__main__":
    main()
