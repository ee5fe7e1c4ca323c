"""The soak bench at CI size: a real study of short trials through a runner kill, a worker
kill and a database restart (seeded), on PostgreSQL and on MariaDB; the same command resumes
it to the end, and every grid point is complete once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import subprocess_env
from tests.mysqlserver import find_binaries
from tests.pgserver import find_bin_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("database", ["postgresql", "mariadb"])
def test_a_study_survives_kills_and_a_database_restart(digits_root, database):
    installed = find_bin_dir() if database == "postgresql" else find_binaries()
    if installed is None:
        pytest.skip(f"{database} is not installed (.ci/run installs it)")
    args = ["--database", database, "--points", "6", "--kills", "2", "--db-restarts", "1"]
    args += ["--epochs", "3"]
    args += ["--min-wait", "3", "--max-wait", "6", "--seed", "1"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**subprocess_env(), "DSE_DATA_DIR": str(digits_root)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (soak,) = json.loads(result.stdout.strip().splitlines()[-1])
    kills = soak["runner_kills"] + soak["worker_kills"]
    assert kills + soak["db_restarts"] >= 2  # the events landed before the study ended
    assert (soak["complete"], soak["missing"], soak["duplicates"]) == (6, 0, 0)
    assert soak["runner_errors"] == 0, result.stdout  # their last lines
    assert soak["epochs_trained"] >= 18 and soak["epochs_retrained"] <= kills
    assert soak["epochs_beyond_grid"] <= kills
