"""The numeric precision a TrialConfig trains and evaluates in."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from dse.config import TrialConfig


def autocast(config: TrialConfig, device: torch.device) -> AbstractContextManager:
    """bf16 autocast on `device` when config.precision is bf16; otherwise a no-op context."""
    if config.precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()
