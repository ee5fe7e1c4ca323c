"""Per-trial overhead of the runner's paths: local worker processes vs a Dask cluster.

    python bench/dispatch_overhead.py [--storage URL] [--scheduler tcp://HOST:8786] [--trials 16]

Runs the same grid of trivially short trials (a tiny CapsNet, 300 synthetic digits, 1 epoch)
through `--backend local` (2 worker processes) and `--backend dask` (the given scheduler, or a
LocalCluster of 2 single-thread worker processes started here), into one storage (default: a
SQLite file in a temp dir; pass a postgresql:// URL to measure that path).

Overhead of a trial = its time in the study (ask, on the runner, to the stored result) minus the
time the worker spent in it (config, data, training, evaluation). Prints a markdown table and,
on the last line, the same as JSON. The first trial on each worker process pays its imports
and data load: the "warm" columns leave out the first two trials.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

from dse.data.formats import write_idx
from dse.data.sources import SOURCES
from dse.search.runner import RunOptions, run_study
from dse.space import load_space

SPACE = """
name: {name}
base:
  epochs: 1
  eval_batch_size: 200
  dataset: {{val_size: 100, test_subset: 100}}
  model: {{conv_channels: 8, primary_types: 2, primary_dim: 4, class_dim: 4}}
  batch_schedule: {{batch_size: 50}}
axes:
  model.routing_iterations: [1, 2]
  optimizer.lr: {lrs}
"""


def _digits(folder: Path, n_train: int = 400, n_test: int = 100) -> None:
    rng = np.random.default_rng(0)
    files = SOURCES["mnist"].files
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        write_idx(
            folder / files[f"{split}_images"].name, rng.integers(0, 256, (n, 28, 28), np.uint8)
        )
        write_idx(folder / files[f"{split}_labels"].name, rng.integers(0, 10, n).astype(np.uint8))


def _measure(space_path: Path, name: str, options: RunOptions) -> dict:
    start = time.perf_counter()
    summary = run_study(load_space(str(space_path)), options)
    elapsed = time.perf_counter() - start
    trials = sorted(
        optuna.load_study(study_name=name, storage=options.storage).get_trials(),
        key=lambda t: t.datetime_start,
    )
    overheads = [
        t.duration.total_seconds() - t.user_attrs["environment"]["wall_s"]
        for t in trials
        if t.state == optuna.trial.TrialState.COMPLETE
    ]
    walls = [t.user_attrs["environment"]["wall_s"] for t in trials if "environment" in t.user_attrs]
    warm = overheads[2:] or overheads
    return {
        "backend": options.backend,
        "trials": summary.complete,
        "worker_s_median": statistics.median(walls),
        "overhead_ms_median": 1000 * statistics.median(overheads),
        "overhead_ms_warm_median": 1000 * statistics.median(warm),
        "overhead_ms_warm_max": 1000 * max(warm),
        "study_s": elapsed,
        "trials_per_s": summary.complete / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=None)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--trials", type=int, default=16, help="grid size (even)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dse-overhead-"))
    _digits(folder / "mnist")
    storage = args.storage or f"sqlite:///{folder}/overhead.db"
    lrs = "[" + ", ".join(f"{0.001 * (i + 1):.3f}" for i in range(args.trials // 2)) + "]"
    cluster = None
    scheduler = args.scheduler
    if scheduler is None:
        from distributed import LocalCluster

        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        scheduler = cluster.scheduler_address
    rows = []
    stamp = int(time.time())
    for backend in ("local", "dask"):
        name = f"overhead-{backend}-{stamp}"
        space = folder / f"{name}.yaml"
        space.write_text(SPACE.format(name=name, lrs=lrs))
        options = RunOptions(
            storage=storage,
            data_dir=str(folder),
            backend=backend,
            workers=2 if backend == "local" else None,
            scheduler=scheduler if backend == "dask" else None,
        )
        rows.append(_measure(space, name, options))
    if cluster is not None:
        cluster.close()
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")
    print(json.dumps({"storage": storage.split("://")[0], "rows": rows}))


if __name__ == "__main__":
    main()
