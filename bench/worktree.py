"""Another commit's code beside this checkout's, for benchmarks that compare the two, and the
--now-set option they share (overrides for this checkout's side only)."""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def checkout_of(root: Path, ref: str | None) -> Iterator[Path | None]:
    """A temporary git worktree of `root` at commit `ref` (None when `ref` is None), removed on
    exit."""
    if ref is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="dse-bench-ref-") as folder:
        tree = Path(folder) / "ref"
        subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "--detach", str(tree), ref],
            check=True,
            capture_output=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )


def code_env(tree: Path) -> dict[str, str]:
    """This environment with `tree` first on PYTHONPATH, so `python -m dse` runs its code."""
    path = [str(tree), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}


def add_now_set(parser: argparse.ArgumentParser) -> None:
    """--now-set KEY=VALUE (repeatable): overrides for this checkout's side of --against only
    (compile=true, which REF's code may not know)."""
    parser.add_argument(
        "--now-set",
        dest="now_sets",
        action="append",
        default=[],
        help="KEY=VALUE for this checkout's side of --against only (compile=true).",
    )


def check_now_set(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--now-set without --against has no side to apply to: a usage error (exit 2)."""
    if args.now_sets and not args.against:
        parser.error("--now-set applies to this checkout's side of --against: give --against")
