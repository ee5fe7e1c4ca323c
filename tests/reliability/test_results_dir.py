"""A read-only or full results folder: one clear error before any training starts.

Root ignores permission bits, so as root the read-only case runs `dse run` without the
capabilities that override them (setpriv); the full case runs it inside a private mount
namespace on a 64 KiB tmpfs (unshare -m). Both are real processes on real filesystems.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import dse_command, write_space

AS_ROOT = os.geteuid() == 0


def _without_override(command: list[str]) -> list[str]:
    """As root: the command without CAP_DAC_OVERRIDE, so permission bits apply to it."""
    if not AS_ROOT:
        return command
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv: cannot make permission bits apply")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]


def _check_one_line(run: subprocess.CompletedProcess, message: str) -> None:
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], run.stderr


@pytest.mark.parametrize("existing", [False, True], ids=["new-database", "existing-database"])
def test_read_only_results_folder(workdir, existing):
    space = write_space(workdir)
    results = workdir / "results"
    results.mkdir()
    if existing:
        command, env = dse_command("run", "--space", str(space), "-q")
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        write_space(workdir, lrs="[0.001, 0.003, 0.01]")  # more work to do
    before = {p.name: p.stat().st_mtime_ns for p in results.iterdir()}
    results.chmod(0o555)
    try:
        command, env = dse_command("run", "--space", str(space), "-q")
        run = subprocess.run(
            _without_override(command), env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        results.chmod(0o755)
    _check_one_line(run, "--storage sqlite:///results/dse.db: ")
    assert "results is not writable" in run.stderr
    assert {p.name: p.stat().st_mtime_ns for p in results.iterdir()} == before


def _can_mount_tmpfs() -> bool:
    if not AS_ROOT or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs root and mount namespaces (unshare -m)")
def test_full_results_folder(workdir):
    """The folder holds 64 KiB and is filled; the run must stop before training, leave the
    folder as it found it, and say the disk is full."""
    space = write_space(workdir)
    results = workdir / "results"
    results.mkdir()
    command, env = dse_command("run", "--space", str(space), "-q")
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {results} && "
        f"dd if=/dev/zero of={results}/filler bs=4k count=64 2>/dev/null; "
        f"ls -l --time-style=+%s.%N {results} > {workdir}/before.txt; "
        '"$@"; code=$?; '
        f"ls -l --time-style=+%s.%N {results} > {workdir}/after.txt; exit $code"
    )
    run = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    _check_one_line(run, "--storage sqlite:///results/dse.db: cannot open the database: ")
    assert "database or disk is full" in run.stderr
    assert (workdir / "after.txt").read_text() == (workdir / "before.txt").read_text()
    assert "Traceback" not in run.stderr
