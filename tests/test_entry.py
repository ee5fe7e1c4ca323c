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
