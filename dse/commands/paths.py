"""Checks of output paths, made before any work so that a bad path costs nothing."""

from __future__ import annotations

import os
from pathlib import Path

from dse.errors import ConfigError, option


def check_writable(path: str | Path, name: str) -> None:
    """Fail before any work when the output file of input `name` cannot be written."""
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise ConfigError(f"{option(name)} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{option(name)} {path}: directory {parent} is not writable")


def check_output_dir(path: str | Path, name: str) -> None:
    """Fail before any work when the output folder of input `name` cannot be made or written."""
    folder = Path(path).resolve()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{option(name)} {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK):
        raise ConfigError(f"{option(name)} {path}: directory {existing} is not writable")
