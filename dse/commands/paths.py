"""Checks of output paths, made before any work so that a bad path costs nothing."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from dse.errors import ConfigError, option


def check_writable(path: str | Path, name: str) -> None:
    """Fail before any work when the output file of input `name` cannot be written."""
    target = Path(path).resolve()
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{option(name)} {path}: {parent} is not a directory")
    if not parent.is_dir():
        raise ConfigError(f"{option(name)} {path}: directory {parent} does not exist")
    if target.is_dir():
        raise ConfigError(f"{option(name)} {path}: is a directory")
    if target.exists() and not target.is_file():
        raise ConfigError(
            f"{option(name)} {path}: not a regular file (a device, a pipe or a socket)"
        )
    if target.exists() and not os.access(target, os.W_OK):
        raise ConfigError(f"{option(name)} {path}: not writable")
    _probe(parent, name, path)


def check_output_dir(path: str | Path, name: str) -> None:
    """Fail before any work when the output folder of input `name` cannot be made or written."""
    folder = Path(path).resolve()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{option(name)} {path}: {existing} is not a directory")
    _probe(existing, name, path)


def _probe(folder: Path, name: str, path: str | Path) -> None:
    """Create and remove a file in `folder`: permission bits say nothing to root, nor about
    read-only mounts and pseudo file systems (/proc), where only a write tells."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        # a pseudo file system answers "No such file or directory" for a folder that exists
        known = error.strerror and error.errno != errno.ENOENT
        reason = f" ({error.strerror})" if known else ""
        raise ConfigError(
            f"{option(name)} {path}: directory {folder} is not writable{reason}"
        ) from None
