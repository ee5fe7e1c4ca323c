"""Checkpoints written by `dse train --save`: weights with their TrialConfig and result.

Loaded with torch's weights-only unpickler, so a foreign pickle cannot run code; anything that
is not a complete dse checkpoint is a DataError naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dse.config import TrialConfig
from dse.data.datasets import INFO
from dse.errors import ConfigError, DataError
from dse.model import build_model

FORMAT = "dse-checkpoint-1"


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
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise DataError(
                f"{self.path}: weights do not fit the config's model: {first}"
            ) from None
        return model.to(device).eval()


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load on foreign bytes raises many kinds (KeyError included)
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise DataError(f"{path}: not a dse checkpoint (cannot be read: {reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"{path}: not a dse checkpoint (no '{FORMAT}' format tag)")
    try:
        config = TrialConfig.from_dict(payload["config"], source=f"{path}: config")
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    return Checkpoint(path, config, payload["state_dict"], payload.get("result", {}))
