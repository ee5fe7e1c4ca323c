"""The `dse` command: the CLI, with Ctrl-C while it loads ending in one line too.

Loading the CLI's modules takes a second or more (numpy, optuna, pandas); a Ctrl-C then would
otherwise end in a traceback of the import under way.
"""

from __future__ import annotations

import sys

from dse.errors import INTERRUPTED_EXIT  # a small module: nothing heavy loads before the try


def main() -> None:
    if sys.stdout is None or sys.stderr is None:  # `dse ... >&-`: Python gives None
        if sys.stderr is not None:
            sys.stderr.write("error: stdout is closed: nowhere to write the output\n")
        sys.exit(2)
    try:
        from dse.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted while starting: nothing was done\n")
        sys.exit(INTERRUPTED_EXIT)
    cli_main()
