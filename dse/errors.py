"""Errors a user can cause. The CLI maps every DseError to one line on stderr and exit code 2.

A library error names the input the user got wrong with `option("storage")`, never with a
command-line spelling: the library does not know it was called from the CLI. `str(error)`
reads `storage sqlite:///x.db: ...` (the keyword of the library call); the CLI's error
boundary shows the same message as `--storage sqlite:///x.db: ...` (`cli_message`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

INTERRUPTED_EXIT = 130  # the shell's convention for SIGINT (128 + 2)

_OPTION = re.compile("⟨([a-z_]+)⟩")


def option(name: str) -> str:
    """An input named in an error message: its keyword, as `gpus_per_trial` or `data_dir`."""
    return f"⟨{name}⟩"


def as_cli(text: str) -> str:
    """A message with each input named by its command-line option (`--gpus-per-trial`)."""
    return _OPTION.sub(lambda m: "--" + m.group(1).replace("_", "-"), text)


def nearest(value: str, known: Iterable[str]) -> str | None:
    """The known word a typo most likely meant, or None when none is close."""
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def choose_from(name: str, value: object, choices: Iterable[str]) -> str:
    """'NAME VALUE: choose from a, b, c', with the nearest choice when VALUE looks like a typo."""
    choices = list(choices)
    guess = nearest(str(value), choices)
    hint = f" (did you mean {guess}?)" if guess else ""
    return f"{name} {value}: choose from {', '.join(choices)}{hint}"


class DseError(Exception):
    """Base of the errors a user can cause and fix (bad file, bad value, missing data)."""

    exit_code = 2  # what the CLI exits with
    label = "error: "  # what the CLI's line starts with

    def __str__(self) -> str:
        return _OPTION.sub(lambda m: m.group(1), super().__str__())

    def cli_message(self) -> str:
        """The message with each input named by its command-line option, on one line."""
        return " ".join(as_cli(super().__str__()).split("\n"))


class ConfigError(DseError):
    """A configuration file, preset name or --set override is invalid."""


class DataError(DseError):
    """A dataset is missing, corrupt or in the wrong format."""


class StorageError(DseError):
    """The results database cannot be opened, or holds no such study or trial."""


class DatabaseDown(StorageError):
    """The results database stayed unreachable longer than the run's outage limit: the run
    ends, its recorded trials are kept, and the same command resumes it."""


class Interrupted(DseError):
    """A run stopped by a signal (Ctrl-C, or SIGTERM from a cluster's scheduler): its trials
    in flight are recorded and queued again, and the same command resumes."""

    label = ""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_code = 128 + signal_number  # the shell's convention: 130 SIGINT, 143 SIGTERM


class WorkersCannotStart(DseError):
    """Local worker processes die as they start (torch will not import, say): the run ends
    with the cause, its trials queued again, rather than restart a worker for every trial."""

    exit_code = 1  # as a run whose every trial failed: the inputs were fine


class TrainingError(DseError):
    """A run failed for a reason the configuration causes (for example a diverging loss)."""


class OutOfMemory(TrainingError):
    """A tensor the configuration (its batch size, its model's sizes) needs did not fit in the
    device's memory; dse.train.memory says which failures are this."""


class NonFiniteLossError(TrainingError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int):
        super().__init__(f"non-finite loss at epoch {epoch}, step {step}")
        self.epoch = epoch
        self.step = step
