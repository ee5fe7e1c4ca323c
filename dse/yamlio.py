"""YAML in and out, with floats as people write them.

PyYAML follows YAML 1.1, where `1e-3` (no dot) is a string, not a float. Learning rates are
written exactly like that, so the loader below also resolves such numbers as floats.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dse.errors import ConfigError

_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    pass


# Replace the float resolver with one that also accepts exponents without a dot.
_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _mapping_without_repeated_keys(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    """A mapping, refused where a key repeats: PyYAML keeps the last silently, so an axis
    written twice would run only its second values."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str | int | float | bool) or key is None:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_repeated_keys
)


# Aliases share one object per anchor, so a few hundred bytes of nested aliases (a "billion
# laughs" file) load small and expand to gigabytes when read out as values. A config or a space
# is hundreds of values; past this many, counting every alias expanded, it is not one.
MAX_VALUES = 1_000_000


def loads(text: str, source: str = "<string>") -> Any:
    """Parse YAML text; a syntax error becomes a ConfigError naming the source and line, and
    so does a document of more than MAX_VALUES values once its aliases are expanded."""
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if not _within_values(data, MAX_VALUES):
        raise ConfigError(
            f"{source}: more than {MAX_VALUES:,} values once its aliases (*name) are expanded: "
            "not a config or a search space"
        )
    return data


def _within_values(data: Any, limit: int) -> bool:
    """Whether `data` holds at most `limit` values, counting a shared (aliased) one each time
    it is reached; stops counting at the limit."""
    count, stack = 0, [data]
    while stack:
        value = stack.pop()
        count += 1
        if count > limit:
            return False
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return True


# A config or a search space is a few KB; a file past this is not one (and /dev/zero, or a
# pipe that never ends, would otherwise be read until memory runs out).
MAX_FILE_BYTES = 4 * 2**20


def read_text(path: str | Path, source: str | None = None) -> str:
    """A small UTF-8 text file's content; a missing, unreadable, oversized or non-UTF-8 file
    is a ConfigError naming `source` (default: the path)."""
    source = source or str(path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_FILE_BYTES // 2**20} MB; not a dse file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None


def load_file(path: str | Path) -> Any:
    """Read and parse a YAML file; a missing, unreadable or oversized file is a ConfigError."""
    return loads(read_text(path), source=str(path))


class _Dumper(yaml.SafeDumper):
    pass


def _inline_list(dumper: yaml.SafeDumper, data: list | tuple) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_Dumper.add_representer(list, _inline_list)
_Dumper.add_representer(tuple, _inline_list)


def dumps(data: Any) -> str:
    """Block-style YAML in the key order given (the schema's, not alphabetical); lists inline."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
