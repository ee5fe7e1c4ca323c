"""The `dse` command's entry point: Ctrl-C while the CLI loads is one line, not a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import dse_command

# Ctrl-C arriving while dse.cli is imported (its imports take a second or more): a finder
# that raises KeyboardInterrupt when that import starts, as SIGINT would then.
CTRL_C_WHILE_LOADING = """
import sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "dse.cli":
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
sys.argv = ["dse", "spaces"]
import runpy
runpy.run_module("dse", run_name="__main__")
"""


def test_ctrl_c_while_the_cli_loads_is_one_line_and_exit_130():
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_WHILE_LOADING], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 130
    assert done.stderr == "interrupted while starting: nothing was done\n"
    assert done.stdout == ""


def test_sigterm_while_the_cli_loads_is_one_line_and_exit_143():
    sigterm = CTRL_C_WHILE_LOADING.replace(
        "raise KeyboardInterrupt", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    )
    done = subprocess.run(
        [sys.executable, "-c", sigterm], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 143
    assert done.stderr == "interrupted while starting: nothing was done\n"


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_a_command_without_a_line_of_its_own_in_one_line(number):
    """`dse replay` (read-only, no signal handling of its own) stopped by SIGTERM (a cluster's
    scheduler) or Ctrl-C: one line, exit code 128 + the signal; SIGTERM killed it silently."""
    record = Path(__file__).parents[1] / "bench/records/efficiency.json.gz"
    command, env = dse_command("replay", "--record", str(record), "--seeds", "3000")  # minutes
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, signalled as a terminal would
    )
    time.sleep(6)  # the CLI loaded (about 2 s), the replay under way
    os.killpg(process.pid, number)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + number
    assert err == "interrupted: the command stopped before it finished\n"
    assert out == ""


def test_the_command_runs_through_the_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "dse", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("dse ")


def loaded_by(module: str, heavy: tuple[str, ...]) -> list[str]:
    """Which of the `heavy` modules importing `module` loads, in a fresh interpreter."""
    check = f"import sys, {module}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_cli_starts_without_torch_pandas_or_scipy_stats():
    """Every command pays for what loads at start: torch, pandas and scipy.stats cost dse
    --help 1.5 of its 2.3 s on 2 AVX2 EPYC cores; the commands that need them load them."""
    assert loaded_by("dse.cli", ("torch", "pandas", "scipy.stats")) == []


def test_a_worker_process_starts_without_the_runners_libraries():
    """A spawned worker imports dse.search.workers: with the runner's optuna, sqlalchemy and
    pandas it took 1.3 s before torch, 0.12 s without (2 AVX2 EPYC cores)."""
    assert loaded_by("dse.search.workers", ("optuna", "sqlalchemy", "pandas", "scipy")) == []


def test_the_runner_is_driven_from_python_through_dse_search():
    """The house's entry for notebooks and tests, `from dse.search import run_study`, loads
    the runner on first use, not with the package (see the worker test above)."""
    from dse.search import RunSummary, run_study, runner

    assert (run_study, RunSummary) == (runner.run_study, runner.RunSummary)
