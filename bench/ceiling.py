"""The device's matmul ceiling: the best GFLOP/s of square matmuls, fp32 and bf16.

    python bench/ceiling.py [--device cpu] [--threads N] [--out results/bench]

This is the yardstick of `dse bench`'s ceiling share. Prints a markdown table and, on the last
line, the same as JSON; with --out also writes ceiling.md and ceiling.json there.
"""

from __future__ import annotations

import argparse

import torch

from dse.measure.bench import matmul_ceiling_gflops
from dse.output import print_table_and_json
from dse.train.environment import native_bf16

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=1.0, help="Time per matrix size.")
    parser.add_argument("--out", default=None, help="Folder for ceiling.md and ceiling.json.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [
        {
            "device": str(device),
            "threads": torch.get_num_threads(),
            "precision": name,
            "gflops": round(matmul_ceiling_gflops(device, dtype, args.seconds), 1),
            "native": True if name == "fp32" else native_bf16(device),
        }
        for name, dtype in DTYPES.items()
    ]
    print_table_and_json(rows, args.out, "ceiling")


if __name__ == "__main__":
    main()
