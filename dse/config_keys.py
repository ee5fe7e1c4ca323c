"""The keys a configuration model knows, to explain an unknown one: the nearest known key for
a typo, and for a key of another choice of a tagged section (`lr_policy.T_0` while
`lr_policy.name` is constant) the choice that has it."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from dse.errors import nearest


@dataclass(frozen=True)
class Owner:
    """A tagged section's choice under which a key exists: `lr_policy.name` warm_restarts."""

    section: str
    name: str


def _models(annotation: object) -> list[type[BaseModel]]:
    """The models a field holds: one, or the members of a (tagged) union."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def known_keys(model: type[BaseModel], prefix: str = "") -> dict[str, list[Owner]]:
    """Every dotted key of `model`, with the choices it exists under ([]: under every one)."""
    keys: dict[str, list[Owner]] = {}
    for field_name, field in model.model_fields.items():
        key = f"{prefix}{field_name}"
        members = _models(field.annotation)
        keys.setdefault(key, [])
        tagged = len(members) > 1
        for member in members:
            tag = member.model_fields.get("name")
            for sub, owners in known_keys(member, f"{key}.").items():
                here = [Owner(key, tag.default)] if tagged and tag is not None else []
                if sub == f"{key}.name":
                    here = []  # every choice has a name
                keys.setdefault(sub, []).extend(here + owners)
    return keys


def explain_unknown(model: type[BaseModel], key: str, chosen: str | None = None) -> str:
    """Why `key` is unknown, for a message `KEY: <this>`. `chosen`: the current choice of the
    key's tagged section, when it has one."""
    keys = known_keys(model)
    owners = keys.get(key)
    if owners:
        section = owners[0].section
        names = ", ".join(dict.fromkeys(o.name for o in owners))
        which = names if len(owners) == 1 else f"one of {names}"
        where = f"not a key of {section}.name {chosen}" if chosen else "unknown key here"
        return f"{where}; it belongs to {section}.name {names} (set {section}.name to {which})"
    guess = _nearest_key(keys, key, chosen)
    return f"unknown key; did you mean {guess}?" if guess else "unknown key"


def _nearest_key(keys: dict[str, list[Owner]], key: str, chosen: str | None) -> str | None:
    """The known key a typo most likely meant: a key of the same section, compared by its last
    part (the shared `model.` prefix makes any two keys look alike), one of the current choice
    first; a section not known compares the whole key."""
    parent, _, leaf = key.rpartition(".")
    siblings = {
        k.rpartition(".")[2]: owners for k, owners in keys.items() if k.rpartition(".")[0] == parent
    }
    if not siblings:
        return nearest(key, [k for k in keys if not key.startswith(f"{k}.")])  # not its section
    fits = [n for n, owners in siblings.items() if not owners or chosen in {o.name for o in owners}]
    guess = nearest(leaf, fits) or nearest(leaf, list(siblings))
    return f"{parent}.{guess}" if guess and parent else guess


def of_choice(model: type[BaseModel], section: str, name: str, values: dict[str, Any]) -> dict:
    """Those of `values` (keys of the tagged `section`, by their last part) that its choice
    `name` has too."""
    keys = known_keys(model)
    owners = {k: keys.get(f"{section}.{k}", []) for k in values}
    return {k: v for k, v in values.items() if any(o.name == name for o in owners[k])}
