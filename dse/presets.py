"""The paper's eight evaluated points, as the released FasTrCaps code ran them (SPEC: Presets).

Each preset is data: a partial config laid over the defaults (Adam, lr0 1e-3, batch 128,
routing 3, no sharing, full decoder, exact squash, fp32, constant lr).
"""

from __future__ import annotations

from typing import Any

from dse.config import TrialConfig, apply_overrides
from dse.errors import ConfigError, option

# adabatch as in the paper's workflow figure: batch 1 for epochs 1-3, then 16.
_ADABATCH = {"name": "adabatch", "batch_size": 1, "milestones": [[3, 16]]}
# The released code's warm restarts over batch phases: from 10 x lr0 down to lr0.
_WARM_ADABATCH = {"name": "warm_adabatch", "lr_max": 1e-2, "lr_min": 1e-3}
_SHARING = {"weight_sharing": "fastrcaps", "sharing_stride": 36, "decoder": "small"}

PRESETS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "exp_decay": {"lr_policy": {"name": "exp_decay", "rate": 0.96, "decay_steps": 2000}},
    "one_cycle": {"lr_policy": {"name": "one_cycle", "lr_min": 1e-4, "lr_max": 1e-3}},
    "warm_restarts": {
        "lr_policy": {
            "name": "warm_restarts",
            "lr_max": 1e-3,
            "lr_min": 1e-4,
            "T_0": 1,
            "T_mult": 1,
        }
    },
    "adabatch": {"batch_schedule": _ADABATCH},
    "warm_adabatch": {"batch_schedule": _ADABATCH, "lr_policy": _WARM_ADABATCH},
    "weight_sharing": {"model": _SHARING},
    "wab_ws": {"batch_schedule": _ADABATCH, "lr_policy": _WARM_ADABATCH, "model": _SHARING},
}


def preset_names() -> list[str]:
    return list(PRESETS)


def preset(name: str) -> TrialConfig:
    """The named preset as a TrialConfig; an unknown name lists the valid ones."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    data = TrialConfig().to_dict()
    for section, values in PRESETS[name].items():
        data[section] = {**data[section], **values} if section == "model" else dict(values)
    data["name"] = name
    return TrialConfig.from_dict(data, source=f"preset {name}")


def resolve_config(
    config_path: str | None = None,
    preset_name: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> TrialConfig:
    """The config a command runs: a file or a preset (default: baseline), then --set overrides."""
    if config_path and preset_name:
        raise ConfigError(f"give either {option('config')} or {option('preset')}, not both")
    base = TrialConfig.from_file(config_path) if config_path else preset(preset_name or "baseline")
    if not overrides:
        return base
    return TrialConfig.from_dict(apply_overrides(base.to_dict(), overrides), source=option("set"))


def config_source(
    config_path: str | None, preset_name: str | None, overrides: list[str] | tuple[str, ...] = ()
) -> str:
    """Where `resolve_config`'s config comes from (`c.yaml`, `--preset baseline with --set`),
    for a check made once it resolved, as of a dataset subset against the files."""
    origin = config_path or f"{option('preset')} {preset_name or 'baseline'}"
    return f"{origin} with {option('set')}" if overrides else origin
