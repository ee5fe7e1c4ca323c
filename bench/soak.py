"""Soak: a study of many short real trials while a seeded chaos loop kills the runner, kills
workers and restarts the database; the same command resumes the study until it is done, and
the end state is checked.

    DSE_DATA_DIR=... python bench/soak.py [--points 60] [--kills 20] [--db-restarts 3]
        [--epochs 4] [--workers 2] [--seed 0] [--backend local|dask]
        [--database postgresql|mariadb] [--out DIR]

A private database server holds the study: PostgreSQL (tests/pgserver.py; Debian's
`postgresql` binaries) or MariaDB (tests/mysqlserver.py; Debian's `mariadb-server`). `dse run`
runs as its own process group; the chaos loop, seeded, waits a random while and then either
SIGKILLs the whole group (the runner and its workers, as an OOM killer or a lost node would),
SIGKILLs one worker, or stops the database and starts it again a few seconds later. With
`--backend dask` the trials run on a Dask LocalCluster of `--workers` processes (started here,
outside the runner's group, so a killed runner leaves them up); a worker kill SIGKILLs one of
them and its nanny starts it again. A killed runner is started again with the same command.
Once the events are spent, the run goes to its end. Prints a markdown table and, on the last
line, the same as JSON: kills survived, database restarts, trials complete, grid points
missing or complete twice, epochs trained and reported, epochs retrained (reported by an
attempt, trained again by the next), trials that resumed from a checkpoint, training seconds
lost past checkpoints, and wall time.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' database server helpers

from dse.output import print_table_and_json  # noqa: E402
from dse.search.records import TrialRecord  # noqa: E402
from dse.search.storage import normalized_url  # noqa: E402
from tests.mysqlserver import MariaDBServer, find_binaries  # noqa: E402
from tests.pgserver import PostgresServer, find_bin_dir  # noqa: E402

SPACE = """
name: soak
description: tiny CapsNets on 300 digits; many short real trials
base:
  epochs: {epochs}
  eval_batch_size: 200
  dataset: {{val_size: 100, train_subset: 300, test_subset: 100}}
  model: {{conv_channels: 8, primary_types: 2, primary_dim: 4, class_dim: 4}}
  batch_schedule: {{batch_size: 50}}
axes:
  model.routing_iterations: [1, 2, 3]
  seed: {seeds}
"""


@dataclass
class Soak:
    points: int
    epochs: int
    runner_kills: int = 0
    worker_kills: int = 0
    db_restarts: int = 0
    runner_starts: int = 0
    runner_errors: int = 0  # runs that ended on their own with an error (last lines on stderr)
    complete: int = 0
    missing: int = 0
    duplicates: int = 0
    epochs_trained: int = 0
    epochs_retrained: int = 0
    # epochs reported beyond the grid's: a stale retry (optuna's callback) carries no link to
    # the attempt it retries, so its re-trained epochs show here, not in epochs_retrained
    epochs_beyond_grid: int = 0
    resumed: int = 0  # retries that resumed from a checkpoint (resumed_from_epoch > 0)
    lost_train_s: float = 0.0  # training seconds killed attempts ran past their checkpoint
    wall_s: float = 0.0


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the runner's workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def chaos(
    args: argparse.Namespace,
    command: list[str],
    server: PostgresServer | MariaDBServer,
    worker_pids: Callable[[int], list[int]],
) -> Soak:
    """Run the command to its end through the seeded events; count what happened.
    `worker_pids(runner_pid)`: the processes that train trials now."""
    rng = random.Random(args.seed)
    worker_kills = args.kills // 2
    events = ["runner"] * (args.kills - worker_kills) + ["worker"] * worker_kills
    events += ["database"] * args.db_restarts
    rng.shuffle(events)
    soak = Soak(points=args.points, epochs=args.epochs)
    log = Path(tempfile.mkdtemp(prefix="dse-soak-")) / "runner.log"
    while True:
        with log.open("w") as stderr:
            run = subprocess.Popen(
                command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=stderr
            )
        soak.runner_starts += 1
        killed = False
        while events and run.poll() is None:
            time.sleep(rng.uniform(args.min_wait, args.max_wait))
            if run.poll() is not None:
                break
            event = events.pop()
            if event == "runner":
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
                soak.runner_kills += 1
                killed = True
            elif event == "worker" and (workers := worker_pids(run.pid)):
                os.kill(rng.choice(sorted(workers)), signal.SIGKILL)
                soak.worker_kills += 1
            elif event == "database":
                server.pause()
                time.sleep(rng.uniform(1.0, 6.0))
                server.resume()
                soak.db_restarts += 1
        code = run.wait()
        if code != 0 and not killed:
            soak.runner_errors += 1
            print(f"runner exited {code}: {log.read_text().strip().splitlines()[-1:]}")
        if code == 0:  # the study is done (events left unspent show in the counts)
            return soak


def check(soak: Soak, url: str) -> Soak:
    """Each grid point complete once; epochs trained over every attempt against the grid's."""
    study = optuna.load_study(study_name="soak", storage=normalized_url(url))
    trials = study.get_trials(deepcopy=False)
    complete = Counter(TrialRecord(t).point_key() for t in trials if t.state == TrialState.COMPLETE)
    soak.complete = sum(complete.values())
    soak.missing = soak.points - len(complete)
    soak.duplicates = sum(n - 1 for n in complete.values())
    soak.epochs_trained = sum(epochs_trained(TrialRecord(t)) for t in trials)
    soak.epochs_retrained = epochs_retrained([TrialRecord(t) for t in trials])
    soak.epochs_beyond_grid = soak.epochs_trained - soak.points * soak.epochs
    done = [TrialRecord(t) for t in trials if t.state == TrialState.COMPLETE]
    soak.resumed = sum(1 for record in done if record.resumed_from_epoch)
    soak.lost_train_s = round(sum(record.lost_train_s for record in done), 1)
    return soak


@contextmanager
def dask_cluster(workers: int) -> Iterator[tuple[str, Callable[[int], list[int]]]]:
    """A LocalCluster of `workers` processes (one thread each): its address, and a function
    that lists its worker processes."""
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster.scheduler_address)

    def worker_pids(_runner: int) -> list[int]:
        try:
            return list(client.run(os.getpid, wait=True).values())
        except Exception:  # a worker is being restarted: no victim this time
            return []

    try:
        yield cluster.scheduler_address, worker_pids
    finally:
        client.close()
        cluster.close()


def epochs_retrained(records: list[TrialRecord]) -> int:
    """Epochs trained twice: for each attempt at a point after the first, the epochs its
    predecessor had reported beyond those the attempt restored from the checkpoint."""
    attempts: dict[int, list[TrialRecord]] = {}
    for record in sorted(records, key=lambda r: r.number):
        attempts.setdefault(record.retry_of, []).append(record)
    again = 0
    for chain in attempts.values():
        for before, after in pairwise(chain):
            reported = max((point.epoch for point in before.curve), default=0)
            again += max(0, reported - (after.resumed_from_epoch or 0))
    return again


def epochs_trained(record: TrialRecord) -> int:
    """The epochs this attempt trained and reported itself (not those it resumed from; an
    epoch whose report a kill cut off is in no attempt's count)."""
    resumed = record.resumed_from_epoch or 0
    return sum(1 for point in record.curve if point.epoch > resumed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=60, help="grid points (a multiple of 3)")
    parser.add_argument("--kills", type=int, default=20, help="runner and worker kills")
    parser.add_argument("--db-restarts", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-wait", type=float, default=6.0, help="seconds between events")
    parser.add_argument("--max-wait", type=float, default=14.0)
    parser.add_argument("--backend", choices=("local", "dask"), default="local")
    parser.add_argument("--database", choices=("postgresql", "mariadb"), default="postgresql")
    parser.add_argument("--out", help="also write FOLDER/soak.md and .json")
    args = parser.parse_args()
    server = database_server(args.database, Path(tempfile.mkdtemp(prefix="dse-soak-db-")))
    with tempfile.TemporaryDirectory() as tmp:
        server.start()
        try:
            url = server.create_database("soak")
            space = Path(tmp) / "soak.yaml"
            seeds = list(range(args.points // 3))
            space.write_text(SPACE.format(epochs=args.epochs, seeds=seeds))
            command = [sys.executable, "-m", "dse", "run", "--space", str(space), "-q"]
            command += ["--storage", url, "--checkpoint-dir", str(Path(tmp) / "checkpoints")]
            with ExitStack() as stack:
                if args.backend == "dask":
                    address, worker_pids = stack.enter_context(dask_cluster(args.workers))
                    command += ["--backend", "dask", "--scheduler", address]
                else:
                    worker_pids = children
                    command += ["--workers", str(args.workers), "--gpus", "cpu"]
                start = time.monotonic()
                soak = chaos(args, command, server, worker_pids)
                soak.wall_s = round(time.monotonic() - start, 1)
            print_table_and_json([asdict(check(soak, url))], args.out, "soak")
        finally:
            server.stop()
            shutil.rmtree(server.folder, ignore_errors=True)


def database_server(kind: str, folder: Path) -> PostgresServer | MariaDBServer:
    """A private server of `kind` in `folder`, not started; exits when it is not installed."""
    if kind == "mariadb":
        binaries = find_binaries()
        if binaries is None:
            sys.exit("soak: MariaDB is not installed (apt-get install mariadb-server)")
        return MariaDBServer(*binaries, folder)
    bin_dir = find_bin_dir()
    if bin_dir is None:
        sys.exit("soak: PostgreSQL's initdb is not installed (apt-get install postgresql)")
    return PostgresServer(bin_dir, folder)


if __name__ == "__main__":
    main()
