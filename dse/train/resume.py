"""Per-epoch checkpoints a run resumes from: everything the next epoch depends on.

After each complete epoch the trainer writes one file: the model's weights and Adam's state,
every RNG state (torch's CPU generator, the training GPU's, numpy's, python's `random`, and the
data-order generator that shuffles and crops), the position in the plan (optimizer steps so
far: the LR policy's clock; the batch sizes follow from the config and the epoch), and the
history so far (epoch records, training seconds, the best validation accuracy with its epoch,
time and weights). A run resumed from it goes on with the next epoch and, on a CPU, ends with
the same history and accuracies, bit for bit, as a run never stopped.

With repeats (seeds trained one after another) the file also says which seed is training and
holds the finished seeds' results.

The file is `ResumeState`'s fields by name, written with torch.save and read back with torch's
weights-only unpickler. It is written atomically (a temp file in the same folder, fsync,
os.replace, the folder fsynced): a process killed while writing leaves the previous epoch's
file whole. `ResumeFile` removes it when the run completes, unless asked to keep it.
"""

from __future__ import annotations

import contextlib
import os
import random
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dse.config import TrialConfig
from dse.errors import ConfigError, DataError
from dse.train.torch_files import format_mismatch, load_weights, read_torch_file

FORMAT = "dse-resume-1"


@dataclass(frozen=True)
class ResumeState:
    """What a per-epoch checkpoint holds, written and read by these field names."""

    format: str  # FORMAT
    config: dict[str, Any]  # the run's TrialConfig, repeats included
    seed_index: int  # the seed training: config.seed + seed_index (0 without repeats)
    finished: list[dict[str, Any]]  # TrialResult.to_dict() of the seeds before it
    epoch: int  # complete epochs of this seed
    model: dict[str, torch.Tensor]  # the weights after `epoch`
    optimizer: dict[str, Any]  # Adam's state_dict
    rng: dict[str, Any]  # rng_states()
    progress: dict[str, Any]  # the trainer's history so far (trainer.progress_state)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: object) -> ResumeState | None:
        """Read back by field name; None unless `data` holds every field and FORMAT's tag."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        try:
            return cls(**{f.name: data[f.name] for f in fields(cls)})
        except KeyError:
            return None

    def trial_config(self, source: str) -> TrialConfig:
        return TrialConfig.from_dict(self.config, source=f"{source}: config")


# --- RNG states -------------------------------------------------------------------------------


def rng_states(generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """Every random state training draws from, in plain types the weights-only loader reads."""
    legacy = np.random.get_state(legacy=False)
    numpy_state = {**legacy, "state": {**legacy["state"], "key": legacy["state"]["key"].tolist()}}
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": numpy_state,
        "python": random.getstate(),
        "generator": generator.get_state(),
    }


def restore_rng(states: dict[str, Any], generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)
    numpy_state = states["numpy"]
    key = np.array(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state({**numpy_state, "state": {**numpy_state["state"], "key": key}})
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    generator.set_state(states["generator"])


# --- the file ---------------------------------------------------------------------------------


def write_atomic(path: Path, payload: dict[str, Any]) -> None:
    """torch.save to a temp file beside `path`, fsync, rename over `path`, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name (another process may write the same checkpoint), created with the umask's
    # mode as any file (mkstemp's 0600 would lock out other users of a shared folder).
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        torch.save(payload, tmp)
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C included: no temp file left behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # some file systems cannot fsync a folder
        _fsync(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _fsync(path: str | Path, flags: int) -> None:
    handle = os.open(path, flags)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def read_state(path: Path) -> ResumeState:
    """The checkpoint at `path`; anything else is a DataError naming the file."""
    raw = read_torch_file(path)
    state = ResumeState.from_dict(raw)
    if state is None:
        saved = isinstance(raw, dict) and "state_dict" in raw
        mismatch = format_mismatch(raw, ResumeState, FORMAT)
        what = "holds only best weights (dse train --save)" if saved else mismatch
        raise DataError(f"{path}: not a per-epoch checkpoint to resume from ({what})")
    parts = {"optimizer": state.optimizer, "rng": state.rng, "progress": state.progress}
    if not all(isinstance(part, dict) for part in parts.values()):
        broken = next(name for name, part in parts.items() if not isinstance(part, dict))
        raise DataError(f"{path}: a damaged per-epoch checkpoint: its {broken} is no mapping")
    if len(state.progress.get("history", [])) != state.epoch:
        raise DataError(f"{path}: its history does not end at its epoch {state.epoch}")
    return state


@contextlib.contextmanager
def restoring(path: Path, what: str) -> Iterator[None]:
    """Restoring `what` from the checkpoint at `path`: a part of it not as the trainer wrote it
    is a DataError naming the file, not a traceback from deep in torch or numpy."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise DataError(
            f"{path}: a damaged per-epoch checkpoint: its {what} cannot be restored "
            f"({type(exc).__name__})"
        ) from None


def restore_training(
    path: Path,
    state: ResumeState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    device: torch.device,
) -> None:
    """The weights, Adam's state and the random states of the checkpoint at `path` put back;
    a part not as the trainer wrote it is a DataError naming the file."""
    load_weights(model, state.model, path)
    with restoring(path, "optimizer state"):
        optimizer.load_state_dict(state.optimizer)
    with restoring(path, "random states"):
        restore_rng(state.rng, generator, device)


def _same_training(a: TrialConfig, b: TrialConfig) -> bool:
    """Whether two configs train the same run: all but the name, a label (a trial's retry
    names itself after its own trial number)."""
    return {**a.to_dict(), "name": None} == {**b.to_dict(), "name": None}


@dataclass
class ResumeFile:
    """The one checkpoint file of a run: read at its start (when `resume`), rewritten after
    each epoch, removed when the run completes unless `keep`."""

    path: Path
    resume: bool = True  # resume from the file when it is there (False: start afresh over it)
    keep: bool = False  # keep the file after the run completes
    saved: tuple[int, int] | None = None  # (seed index, epoch) of the file, once known
    writing: tuple[int, int] | None = None  # (seed index, epoch) being written now
    failed: bool = False  # a write failed: the run goes on without checkpoints
    trained: int = 0  # epochs this process completed (each one writes the file, or tries to)
    _state: ResumeState | None = field(default=None, repr=False)

    def config(self) -> TrialConfig:
        """The configuration the file was written for (a DataError if it is no checkpoint)."""
        state = self._read()
        try:
            return state.trial_config(str(self.path))
        except ConfigError as exc:
            raise DataError(str(exc)) from None

    def load(self, config: TrialConfig) -> ResumeState | None:
        """The state to resume `config` from: None when not resuming, when there is no file,
        or (with a warning) when it cannot be read or was written for another config."""
        if not self.resume or not self.path.is_file():
            return None
        try:
            state = self._read()
            written_for = state.trial_config(str(self.path))
        except (DataError, ConfigError) as exc:
            warnings.warn(f"{exc}: starting afresh", stacklevel=2)
            return None
        if not _same_training(written_for, config):
            warnings.warn(f"{self.path}: written for another config: starting afresh", stacklevel=2)
            return None
        return state

    def _read(self) -> ResumeState:
        if self._state is None:
            self._state = read_state(self.path)
            self.saved = (self._state.seed_index, self._state.epoch)
        return self._state

    def write(self, state: ResumeState) -> None:
        """Write the state after an epoch; a failure (disk full, no permission) is a warning
        and the run goes on without checkpoints."""
        self.trained += 1
        if self.failed:
            return
        self._state = None  # the loaded state is no longer the file's
        self.writing = (state.seed_index, state.epoch)
        try:
            write_atomic(self.path, state.to_dict())
        except OSError as exc:
            self.failed, self.writing = True, None
            reason = exc.strerror or type(exc).__name__
            message = f"{self.path}: cannot write the checkpoint ({reason}): going on without"
            warnings.warn(message, stacklevel=2)
            return
        self.saved, self.writing = self.writing, None  # a Ctrl-C before here: see latest()

    def latest(self) -> tuple[int, int] | None:
        """(seed index, epoch) of the newest whole file: `saved`, or the one being written when
        Ctrl-C came after its rename over the file (while its folder was synced, say): the file
        on disk says which."""
        if self.writing is not None and self.path.is_file():
            with contextlib.suppress(DataError, OSError):
                on_disk = read_state(self.path)
                if (on_disk.seed_index, on_disk.epoch) == self.writing:
                    return self.writing
        return self.saved

    def finish(self) -> None:
        """The run completed: remove the file, unless kept."""
        if not self.keep:
            self.remove()

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)


@dataclass
class SeedCheckpoints:
    """One seed's per-epoch checkpoints, as the trainer writes them (and its state to resume
    from): the seed's place in the run, the run's config and the seeds already finished."""

    file: ResumeFile
    config: dict[str, Any]  # the whole run's TrialConfig, repeats included
    seed_index: int = 0
    finished: list[dict[str, Any]] = field(default_factory=list)  # TrialResult.to_dict()s
    start: ResumeState | None = None  # this seed's state to resume from

    def write(
        self,
        epoch: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        rng: dict[str, Any],
        progress: dict[str, Any],
    ) -> None:
        """The state after `epoch` complete epochs of this seed."""
        state = ResumeState(
            FORMAT,
            self.config,
            self.seed_index,
            self.finished,
            epoch,
            model.state_dict(),
            optimizer.state_dict(),
            rng,
            progress,
        )
        self.file.write(state)
