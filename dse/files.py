"""Files written for a user whole or not at all.

Each is written to a temporary file beside it and renamed over it: a write cut short (a full
disk, Ctrl-C, a killed process) leaves the previous file as it was, not half of a new one, and
a reader (a `dse run` loading its calibration, a retrain reading an exported config) never
meets a torn file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from dse.errors import ConfigError


def publish(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8, or bytes) to `path` whole or not at all; returns the path."""
    if isinstance(data, bytes):
        return publish_with(path, lambda partial: partial.write_bytes(data))
    return publish_with(path, lambda partial: partial.write_text(data, encoding="utf-8"))


def publish_with(path: str | Path, write: Callable[[Path], object]) -> Path:
    """`write(partial)` writes the file (a library that takes a file name) to a temporary
    path beside `path`, then renamed over it; returns the path. Through a symbolic link, the
    file it points to is replaced (the link stays); a device or a pipe is refused
    (check_regular), which a rename would replace by a plain file."""
    path = Path(path)
    target = check_regular(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        write(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return path


def check_regular(path: str | Path) -> Path:
    """The file a path to write at names (through links): a file or nothing yet, not a
    device, a pipe or a socket (/dev/null, /dev/stdout)."""
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file() and not target.is_dir():
        raise ConfigError(f"{path}: not a regular file (a device, a pipe or a socket)")
    return target
