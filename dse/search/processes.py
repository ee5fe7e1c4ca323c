"""Which process runs a trial, as stored with it, and whether that process has ended: how a
runner on a storage without heartbeats (a journal file) tells a killed runner's trial from a
live one (study.fail_orphans).

A runner is named HOST:PID. The host part carries the PID namespace when the process is not in
the host's own (a container): two containers that share a host name and a journal file do not
see each other's processes, and one must not take the other's live runner for dead.
"""

from __future__ import annotations

import os

_HOST_PID_NAMESPACE = 0xEFFFFFFC  # the inode of the initial PID namespace (PROC_PID_INIT_INO)


def _host() -> str:
    name = os.uname().nodename
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # no /proc (macOS): processes of one host share one namespace
        return name
    return name if namespace == _HOST_PID_NAMESPACE else f"{name}/pidns-{namespace}"


def this_runner() -> str:
    """HOST:PID of this process."""
    return f"{_host()}:{os.getpid()}"


def has_ended(runner: str) -> bool:
    """Whether `runner` (HOST:PID) was a process this one can see that is no longer running.
    Another host's (or another container's) process: not known, so False."""
    host, _, pid = runner.rpartition(":")
    if host != _host() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
