"""Search spaces: the axes (`axes`), what a space holds (`model`), its file (`parse`)."""

from dse.space.axes import Axis, Choice, Fixed, Range, decode, encode
from dse.space.model import (
    DEFAULT_OBJECTIVES,
    PRESET_KEY,
    Constraint,
    DatasetUse,
    Fingerprint,
    SearchSpace,
)
from dse.space.parse import find_space_file, load_space, parse_space, shipped_spaces

__all__ = [
    "DEFAULT_OBJECTIVES",
    "PRESET_KEY",
    "Axis",
    "Choice",
    "Constraint",
    "DatasetUse",
    "Fingerprint",
    "Fixed",
    "Range",
    "SearchSpace",
    "decode",
    "encode",
    "find_space_file",
    "load_space",
    "parse_space",
    "shipped_spaces",
]
