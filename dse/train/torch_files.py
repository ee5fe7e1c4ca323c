"""Reading the files dse writes with torch.save (saved weights, per-epoch checkpoints).

Anything that is not such a file is a DataError naming the file and saying what it is in
words (a folder, empty, cut short, not written by torch.save, holding foreign objects),
never torch's own message; weights that do not fit a model name the first tensor at fault.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import MISSING, fields
from pathlib import Path

import torch
from torch import nn

from dse.errors import DataError

ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive


def format_mismatch(raw: object, payload: type, tag: str) -> str:
    """Why `raw` (read from a torch file) is not the dataclass `payload` tagged `tag`, in
    words: no tag, another format's tag, or the tag and the fields it lacks."""
    if not isinstance(raw, dict) or "format" not in raw:
        return f"no '{tag}' format tag"
    if raw["format"] != tag:
        return f"its format tag is {raw['format']!r}, not '{tag}'"
    missing = [
        f.name
        for f in fields(payload)
        if f.name not in raw and f.default is MISSING and f.default_factory is MISSING
    ]
    return f"its '{tag}' format tag, but no {', '.join(missing) or 'valid fields'}"


def read_torch_file(path: Path) -> object:
    """What torch.save wrote to `path`, read with torch's weights-only unpickler."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a checkpoint file")
    if not path.exists():
        raise DataError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file, not a checkpoint file")
    try:
        with open(path, "rb") as f:
            head = f.read(len(ZIP_MAGIC))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not head:
        raise DataError(f"{path}: not a dse checkpoint (the file is empty)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load on foreign bytes raises many kinds (KeyError included)
        raise DataError(
            f"{path}: not a dse checkpoint ({_why_unreadable(exc, path, head)})"
        ) from None


def _why_unreadable(exc: Exception, path: Path, head: bytes) -> str:
    """Why torch.load failed, in words: torch's messages run to paragraphs."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    if isinstance(exc, pickle.UnpicklingError) and found:
        return f"holds Python objects ({found.group(1)}) beyond tensors and plain data"
    if zipfile.is_zipfile(path):
        return "a zip archive that torch.save did not write, or one damaged inside"
    if head == ZIP_MAGIC:
        return "the file is cut short or damaged: its zip archive cannot be read"
    return "not a file written by torch.save"


def load_weights(model: nn.Module, weights: object, path: Path) -> None:
    """Load `weights` (a state_dict read from `path`) into `model`; a DataError names the first
    tensor missing, extra, of another shape than the model's, or not finite."""
    if not isinstance(weights, dict) or not all(
        isinstance(v, torch.Tensor) for v in weights.values()
    ):
        raise DataError(f"{path}: its weights are not a mapping of names to tensors")
    own = model.state_dict()
    problem = None
    if missing := [k for k in own if k not in weights]:
        problem = f"{missing[0]} is missing ({len(missing)} tensors in all)"
    elif extra := [k for k in weights if k not in own]:
        problem = f"{extra[0]} is not in the model ({len(extra)} tensors in all)"
    else:
        for name, tensor in own.items():
            if weights[name].shape != tensor.shape:
                problem = (
                    f"{name} is {list(weights[name].shape)} in the file, "
                    f"{list(tensor.shape)} in the model"
                )
                break
    if problem is not None:
        raise DataError(f"{path}: weights do not fit the config's model: {problem}")
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise DataError(f"{path}: its weights hold NaN or infinite values ({name})")
    model.load_state_dict(weights)
