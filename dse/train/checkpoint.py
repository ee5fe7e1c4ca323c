"""Checkpoints written by `dse train --save`: weights with their TrialConfig and result.

The file is one dict, CheckpointPayload's fields by name (format, config, state_dict, result),
written with torch.save. It is loaded with torch's weights-only unpickler, so a foreign pickle
cannot run code; anything that is not a complete dse checkpoint is a DataError naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dse.config import TrialConfig
from dse.data.datasets import INFO
from dse.errors import ConfigError, DataError
from dse.model import build_model
from dse.train.result import TrialResult
from dse.train.resume import FORMAT as RESUME_FORMAT
from dse.train.torch_files import format_mismatch, load_weights, read_torch_file

FORMAT = "dse-checkpoint-1"


@dataclass(frozen=True)
class CheckpointPayload:
    """What a checkpoint file holds, written and read by these field names."""

    format: str  # FORMAT
    config: dict[str, Any]  # TrialConfig.to_dict()
    state_dict: dict[str, torch.Tensor]  # the best-validation weights, on the CPU
    result: dict[str, Any] = field(default_factory=dict)  # TrialResult.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """The plain dict torch.save writes (the tensors as they are, not copied)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: object) -> CheckpointPayload | None:
        """Read back by field name; None unless `data` holds every field and FORMAT's tag."""
        if not isinstance(data, dict):
            return None
        names = {f.name for f in fields(cls)}
        try:
            payload = cls(**{k: v for k, v in data.items() if k in names})
        except TypeError:  # a field is missing
            return None
        return payload if payload.format == FORMAT else None


@dataclass
class Checkpoint:
    path: Path
    config: TrialConfig
    state_dict: dict[str, torch.Tensor]
    result: dict[str, Any]

    def model(self, device: torch.device | str = "cpu") -> nn.Module:
        info = INFO[self.config.dataset.name]
        model = build_model(
            self.config.model, (info.channels, info.crop, info.crop), info.n_classes
        )
        load_weights(model, self.state_dict, self.path)
        return model.to(device).eval()


def save_checkpoint(
    path: str | Path, config: TrialConfig, state: dict[str, torch.Tensor], result: TrialResult
) -> None:
    """Weights with their TrialConfig and result, written atomically."""
    path = Path(path)
    payload = CheckpointPayload(FORMAT, config.to_dict(), state, result.to_dict())
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload.to_dict(), tmp)
    os.replace(tmp, path)


def _what_instead(raw: object) -> str:
    """Why a torch file read is no saved-weights checkpoint, in words."""
    if isinstance(raw, dict) and raw.get("format") == RESUME_FORMAT:
        return "a per-epoch checkpoint, to go on with by dse train --resume; saved weights: --save"
    return format_mismatch(raw, CheckpointPayload, FORMAT)


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    raw = read_torch_file(path)
    payload = CheckpointPayload.from_dict(raw)
    if payload is None:
        raise DataError(f"{path}: not a dse checkpoint ({_what_instead(raw)})")
    try:
        config = TrialConfig.from_dict(payload.config, source=f"{path}: config")
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    return Checkpoint(path, config, payload.state_dict, payload.result)
