"""The `dse` command: the CLI, with Ctrl-C or SIGTERM while it loads ending in one line too.

Loading the CLI's modules takes a second or more (numpy, optuna, pandas); a Ctrl-C then would
otherwise end in a traceback of the import under way.
"""

from __future__ import annotations

import signal
import sys

from dse.errors import INTERRUPTED_EXIT  # a small module: nothing heavy loads before the try

STOPPED_LOADING = "interrupted while starting: nothing was done"


def main() -> None:
    if sys.stdout is None or sys.stderr is None:  # `dse ... >&-`: Python gives None
        if sys.stderr is not None:
            sys.stderr.write("error: stdout is closed: nowhere to write the output\n")
        sys.exit(2)
    signal.signal(signal.SIGTERM, _terminated_while_loading)  # the CLI then takes SIGTERM over
    try:
        from dse.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write(f"{STOPPED_LOADING}\n")
        sys.exit(INTERRUPTED_EXIT)
    cli_main()


def _terminated_while_loading(number: int, _frame: object) -> None:
    sys.stderr.write(f"{STOPPED_LOADING}\n")
    sys.exit(128 + number)  # 143, the shell's convention
