"""Named scopes for a model's layers: `dse profile --by layer` attributes time to them."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch.profiler import record_function


def layer_scope(name: str) -> AbstractContextManager:
    """record_function(name); none while torch.compile traces (it drops them, warning each
    time it compiles)."""
    if torch.compiler.is_compiling():
        return nullcontext()
    return record_function(name)
