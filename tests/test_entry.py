"""The `dse` command's entry point: Ctrl-C while the CLI loads is one line, not a traceback."""

from __future__ import annotations

import subprocess
import sys

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


def test_the_command_runs_through_the_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "dse", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("dse ")
