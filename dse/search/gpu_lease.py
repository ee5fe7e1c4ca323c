"""The GPUs a Dask worker process trains on: claimed once per process, by a lock file per GPU
on the host (held until the process exits), so two worker processes never share a GPU."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from typing import Any

from dse.errors import DseError


class GpuLease:
    """The GPUs this worker process owns (claimed once, by lock file) and which are in use."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owned: list[int] = []
        self.in_use: set[int] = set()
        self._files: list[Any] = []

    def take(self, count: int, declared: int) -> list[int]:
        with self.lock:
            if not self.owned:
                self._claim(max(declared, count))
            free = [g for g in self.owned if g not in self.in_use][:count]
            if len(free) < count:
                raise DseError(
                    f"{socket.gethostname()}: no free GPU in this worker process "
                    f"(owns {self.owned}, {len(self.in_use)} in use)"
                )
            self.in_use.update(free)
            return free

    def give_back(self, gpus: list[int]) -> None:
        with self.lock:
            self.in_use.difference_update(gpus)

    def _claim(self, count: int) -> None:
        import fcntl

        import torch

        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        physical = [v.strip() for v in visible.split(",")] if visible else None
        for index in range(torch.cuda.device_count()):
            name = physical[index] if physical else str(index)
            f = open(os.path.join(tempfile.gettempdir(), f"dse-gpu-{name}.lock"), "w")  # noqa: SIM115
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()  # another worker process of this host owns it
                continue
            self._files.append(f)
            self.owned.append(index)
            if len(self.owned) == count:
                return
        raise DseError(
            f"{socket.gethostname()}: {torch.cuda.device_count()} GPUs, not enough free for "
            f"this worker process ({count} wanted): declare --resources GPU=1 per GPU"
        )
