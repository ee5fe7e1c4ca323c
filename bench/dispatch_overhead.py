"""Per-trial overhead of the runner's paths: local worker processes vs a Dask cluster.

    python bench/dispatch_overhead.py [--storage URL] [--scheduler tcp://HOST:8786] [--trials 16]

Runs the same trivially short trials (overhead.yaml: a tiny CapsNet, 100 synthetic digits, 1 step)
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

import optuna

from dse.data.synthetic import write_idx_dataset
from dse.search.options import RunOptions
from dse.search.records import TrialRecord
from dse.search.runner import run_study
from dse.space import load_space


def _measure(name: str, options: RunOptions) -> dict:
    start = time.perf_counter()
    summary = run_study(load_space("overhead.yaml"), options)
    elapsed = time.perf_counter() - start
    trials = sorted(
        optuna.load_study(study_name=name, storage=options.storage).get_trials(),
        key=lambda t: t.datetime_start,
    )
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    overheads = [t.duration.total_seconds() - TrialRecord(t).wall_s for t in complete]
    walls = [w for w in (TrialRecord(t).wall_s for t in trials) if w is not None]
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
    parser.add_argument("--trials", type=int, default=16)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dse-overhead-"))
    write_idx_dataset(folder / "mnist", n_train=400, n_test=100)
    storage = args.storage or f"sqlite:///{folder}/overhead.db"
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
        options = RunOptions(
            storage=storage,
            study_name=name,
            sampler="random",
            n_trials=args.trials,
            data_dir=str(folder),
            backend=backend,
            workers=2 if backend == "local" else None,
            scheduler=scheduler if backend == "dask" else None,
        )
        rows.append(_measure(name, options))
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
