"""8 `dse run` processes share one study of 400 short trials in one SQLite database (the
default storage), through the real runner path: each process runs its own worker and trains
real (tiny) CapsNets. All 400 complete, none more, no "database is locked".

Each process is pinned to one core, so its worker uses one thread (8 x 2 threads on 2 cores
would measure oversubscription, not the storage).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter

from optuna.trial import TrialState

from dse.search.records import TrialRecord
from tests.conftest import dse_command, load_study, write_space

PROCESSES = 8
TRIALS = 400


def test_eight_runners_share_one_sqlite_study_of_400_trials(workdir):
    cores = sorted(os.sched_getaffinity(0))
    runs = []
    start = time.monotonic()
    for i in range(PROCESSES):
        command, env = dse_command(
            "run", "--space", "overhead.yaml", "--study", "shared", "--n-trials", str(TRIALS),
            "--workers", "1", "--sampler", "random", "--seed", str(i), "-q",
        )  # fmt: skip
        core = cores[i % len(cores)]
        runs.append(
            subprocess.Popen(
                command,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                preexec_fn=lambda core=core: os.sched_setaffinity(0, {core}),
            )
        )
    outputs = [run.communicate(timeout=900)[1] for run in runs]
    elapsed = time.monotonic() - start
    for run, stderr in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr[-2000:]
        assert "database is locked" not in stderr and "Traceback" not in stderr
        summary = [line for line in stderr.splitlines() if line.startswith("study shared: ")]
        assert summary and re.search(rf"\d+ complete, 0 failed of {TRIALS} planned", summary[-1])

    trials = load_study("sqlite:///results/dse.db", "shared").get_trials()
    states = Counter(t.state for t in trials)
    assert states[TrialState.RUNNING] == states[TrialState.WAITING] == 0
    assert not [t for t in trials if "error" in t.user_attrs]  # none failed for a reason
    complete = states[TrialState.COMPLETE]
    print(
        f"{complete} trials by {PROCESSES} processes in {elapsed:.0f}s; "
        f"{states[TrialState.FAIL]} failed as stale and rerun"
    )
    assert complete == TRIALS  # all, and not one more
    withdrawn = [t for t in trials if t.user_attrs.get("withdrawn")]
    assert all(t.state == TrialState.FAIL for t in withdrawn)  # asked past the budget: not run


def test_two_runners_of_one_command_train_no_point_twice(workdir):
    """The same `dse run` twice at once on a space with a continuous axis: both sampled with
    --seed 0 and trained each of their points twice. Each takes its own index from the study."""
    write_space(workdir, name="c", epochs=20, lrs="{low: 1.0e-4, high: 1.0e-2, log: true}")
    command, env = dse_command(
        "run", "--space", "c.yaml", "--sampler", "tpe", "--seed", "0", "--n-trials", "6",
        "--workers", "1", "-q",
    )  # fmt: skip
    runs = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outputs = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    trials = load_study("sqlite:///results/dse.db", "c").get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    points = {tuple(sorted(t.params.items())) for t in complete}
    assert len(complete) == 6 and len(points) == 6
    runners = {TrialRecord(t).runner.rpartition(":")[2] for t in complete}
    assert runners == {str(run.pid) for run in runs}  # both trained, at once
