from __future__ import annotations

import os
import subprocess
import sys

from dse.search.processes import has_ended, this_runner


def test_this_runner_is_host_and_pid():
    host, _, pid = this_runner().rpartition(":")
    assert pid == str(os.getpid())
    assert host.split("/pidns-")[0] == os.uname().nodename


def test_an_ended_process_of_this_host_is_told_from_a_live_one():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    host = this_runner().rpartition(":")[0]
    assert has_ended(f"{host}:{child.pid}")
    assert not has_ended(this_runner())
    assert not has_ended(f"{host}:1")  # alive (init), maybe another user's


def test_another_hosts_or_containers_process_is_not_known_to_have_ended():
    """Its PID means nothing here: the trial is left to a runner on that host."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    host = this_runner().rpartition(":")[0]
    for other in (f"elsewhere:{child.pid}", f"{host}/pidns-1:{child.pid}", f"{host}:x", "x"):
        assert not has_ended(other), other
