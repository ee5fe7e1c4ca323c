"""TrialConfig: the one record that fully determines a training run, and its YAML round trip.

Every section is a frozen pydantic model that rejects unknown keys. Sections whose shape
depends on a choice (the model, the LR policy, the batch schedule) are unions tagged by their
`name` key, so `lr_policy.T_0` exists only under `lr_policy.name: warm_restarts`.
Validation runs in JSON mode and strict: YAML lists become tuples, "3" is not an int.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dse import yamlio
from dse.config_bounds import SEED_FIELDS, count_overflow, seeds_overflow
from dse.config_keys import explain_unknown, of_choice
from dse.errors import ConfigError, option


class _Section(BaseModel):
    # allow_inf_nan=False: an infinite or NaN value (`.inf`, `1e999`) is refused by its key
    # when the config is built, not met as a non-finite loss at epoch 1.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _fits_torch(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name not in SEED_FIELDS and (why := count_overflow(value)):
            raise ValueError(why)
        return value


# --- dataset ---------------------------------------------------------------------------------

DatasetName = Literal["mnist", "fashion_mnist", "smallnorb"]
DATASETS: tuple[str, ...] = get_args(DatasetName)


class DatasetConfig(_Section):
    name: DatasetName = "mnist"
    # Held out of the training set for search decisions; test accuracy is reported only.
    val_size: int = Field(5000, ge=1)
    # The validation split depends on this seed only, so every trial sees the same split.
    # numpy's generator takes no negative seed.
    split_seed: int = Field(0, ge=0)
    # Use only this many training samples (after the validation split): CPU-sized runs.
    train_subset: int | None = Field(None, ge=1)
    # Evaluate on only this many test samples (None: the whole test set).
    test_subset: int | None = Field(None, ge=1)
    # MNIST family: random shifts of up to 2 px; smallNORB: random 32x32 crops.
    augment: bool = True


# --- model -----------------------------------------------------------------------------------


class CapsNetConfig(_Section):
    name: Literal["capsnet"] = "capsnet"
    conv_channels: int = Field(256, ge=1)  # Conv1 output channels (Sabour et al.: 256)
    primary_types: int = Field(32, ge=1)  # primary capsule types (32 x 6 x 6 capsules)
    primary_dim: int = Field(8, ge=1)  # components of a primary capsule
    class_dim: int = Field(16, ge=1)  # components of a class capsule
    routing_iterations: int = Field(3, ge=1)
    # none: one W per (input, class) pair; per_type: one W per primary type, shared over its
    # positions; fastrcaps: capsule i uses W[i mod (N / sharing_stride)] (the released code).
    weight_sharing: Literal["none", "per_type", "fastrcaps"] = "none"
    sharing_stride: int = Field(36, ge=1)
    decoder: Literal["full", "small", "none"] = "full"
    squash: Literal["exact", "approx"] = "exact"
    class_bias: bool = False  # a learned bias on the class capsules' input s_j
    recon_weight: float = Field(0.0005, ge=0)


class CnnConfig(_Section):
    """The CNN baseline: conv5x5-32, pool, conv5x5-64, pool, FC 1024, dropout, FC."""

    name: Literal["cnn_baseline"] = "cnn_baseline"
    conv1_channels: int = Field(32, ge=1)
    conv2_channels: int = Field(64, ge=1)
    fc_units: int = Field(1024, ge=1)
    dropout: float = Field(0.5, ge=0, lt=1)


ModelConfig = Annotated[CapsNetConfig | CnnConfig, Field(discriminator="name")]


# --- optimizer -------------------------------------------------------------------------------


# torch.optim.Adam refuses betas outside [0, 1) when the optimizer is made.
Beta = Annotated[float, Field(ge=0, lt=1)]


class OptimizerConfig(_Section):
    name: Literal["adam"] = "adam"
    lr: float = Field(1e-3, gt=0)  # lr0: the base of constant and exp_decay
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)


# --- LR policies (applied per optimizer step) ------------------------------------------------


class ConstantLR(_Section):
    name: Literal["constant"] = "constant"


class ExpDecayLR(_Section):
    """lr = lr0 * rate ** (step / decay_steps); floor of the exponent when staircase."""

    name: Literal["exp_decay"] = "exp_decay"
    rate: float = Field(0.96, gt=0, le=1)
    decay_steps: int = Field(2000, ge=1)
    staircase: bool = False


class OneCycleLR(_Section):
    """lr_min -> lr_max over 45% of the steps, back to lr_min by 90%, then to lr_min / 10."""

    name: Literal["one_cycle"] = "one_cycle"
    lr_min: float = Field(1e-4, gt=0)
    lr_max: float = Field(1e-3, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> OneCycleLR:
        if self.lr_min > self.lr_max:
            raise ValueError(f"lr_min {self.lr_min} is larger than lr_max {self.lr_max}")
        return self


class WarmRestartsLR(_Section):
    """SGDR: cosine lr_max -> lr_min in each period; T_0 epochs, each next T_mult times longer."""

    name: Literal["warm_restarts"] = "warm_restarts"
    lr_max: float = Field(1e-3, gt=0)
    lr_min: float = Field(1e-4, ge=0)
    T_0: float = Field(1.0, gt=0)
    T_mult: float = Field(1.0, ge=1)


class WarmAdaBatchLR(_Section):
    """One cosine cycle lr_max -> lr_min over each phase of an adabatch schedule."""

    name: Literal["warm_adabatch"] = "warm_adabatch"
    lr_max: float = Field(1e-2, gt=0)
    lr_min: float = Field(1e-3, ge=0)


LRPolicyConfig = Annotated[
    ConstantLR | ExpDecayLR | OneCycleLR | WarmRestartsLR | WarmAdaBatchLR,
    Field(discriminator="name"),
]


# --- batch-size schedules --------------------------------------------------------------------


class FixedBatch(_Section):
    name: Literal["fixed"] = "fixed"
    batch_size: int = Field(128, ge=1)


class AdaBatch(_Section):
    """Start at batch_size; each milestone (e, size) switches to size from epoch e (from 0) on."""

    name: Literal["adabatch"] = "adabatch"
    batch_size: int = Field(1, ge=1)
    milestones: tuple[tuple[int, int], ...] = ((3, 16),)

    @model_validator(mode="after")
    def _increasing(self) -> AdaBatch:
        epochs = [epoch for epoch, _ in self.milestones]
        if any(e < 1 for e in epochs) or epochs != sorted(set(epochs)):
            raise ValueError(f"milestone epochs must be >= 1 and strictly increasing: {epochs}")
        if any(size < 1 for _, size in self.milestones):
            raise ValueError("milestone batch sizes must be >= 1")
        return self


BatchScheduleConfig = Annotated[FixedBatch | AdaBatch, Field(discriminator="name")]


# --- the trial -------------------------------------------------------------------------------


class TrialConfig(_Section):
    """Everything one training run depends on. Same config, same CPU: same numbers."""

    name: str | None = None  # a label (the preset's name, or the search point's)
    # config_bounds.SEED_MIN .. SEED_MAX; the repeats' seeds seed+1, ... must fit too (_seeds_fit).
    seed: int = 0
    # Train with seeds seed .. seed+repeats-1, one after another; the metrics are their means.
    repeats: int = Field(1, ge=1)
    epochs: int = Field(30, ge=1)
    precision: Literal["fp32", "bf16"] = "fp32"
    # torch.compile the training step (forward and loss; dse.train.compiled). Its compile
    # seconds are counted apart from train_time_s (compile_s).
    compile: bool = False
    # Evaluation batch: 500 ran 9% faster per sample than 1000 on a 2-core CPU (u_hat of 368
    # MB instead of 737 MB); a GPU may prefer larger.
    eval_batch_size: int = Field(500, ge=1)
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = CapsNetConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    lr_policy: LRPolicyConfig = ConstantLR()
    batch_schedule: BatchScheduleConfig = FixedBatch()

    @model_validator(mode="after")
    def _seeds_fit(self) -> TrialConfig:
        if why := seeds_overflow(self.seed):  # named as a field's error would be
            raise ValueError(f"seed: {why}")
        why = seeds_overflow(self.seed, self.repeats)
        if why:
            raise ValueError(f"seed {self.seed} with repeats {self.repeats}: {why}")
        return self

    @model_validator(mode="after")
    def _policy_fits_schedule(self, info: ValidationInfo) -> TrialConfig:
        # Search spaces check each axis value alone first; combinations are checked later.
        if info.context and info.context.get("values_only"):
            return self
        if self.lr_policy.name == "warm_adabatch" and self.batch_schedule.name != "adabatch":
            raise ValueError(
                "lr_policy warm_adabatch restarts at batch-size changes: "
                "it needs batch_schedule.name: adabatch"
            )
        return self

    # -- serialization --
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yamlio.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, source: str = "config", combination: bool = True) -> TrialConfig:
        """Validate a config dict; combination=False checks each value but not how they combine."""
        return _validate(data, source, combination)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>") -> TrialConfig:
        return _validate(yamlio.loads(text, source), source)

    @classmethod
    def from_file(cls, path: str | Path) -> TrialConfig:
        return _validate(yamlio.load_file(path), str(path))

    def with_overrides(
        self, overrides: list[str] | tuple[str, ...], source: str | None = None
    ) -> TrialConfig:
        """A copy with dotted `key.sub=value` overrides applied (values parsed as YAML); errors
        name `source` (by default --set)."""
        return _validate(apply_overrides(self.to_dict(), overrides), source or option("set"))

    def with_half_batch(self) -> TrialConfig:
        """The same run at half the batch size (`dse run --retry-oom`), never below 1.

        Every phase of a batch schedule is halved and its milestone epochs kept, so adabatch
        keeps its shape and warm_adabatch its restarts. The LR policy is unchanged: policies laid
        out over epochs or the whole run (one_cycle, warm restarts) keep their shape in epochs;
        exp_decay, counted in steps, decays twice as fast per epoch.
        """
        data = self.to_dict()
        schedule = data["batch_schedule"]
        schedule["batch_size"] = max(1, schedule["batch_size"] // 2)
        if "milestones" in schedule:
            schedule["milestones"] = [[e, max(1, size // 2)] for e, size in schedule["milestones"]]
        return _validate(data, option("retry_oom"))


# Sections whose keys depend on their `name`: switching the name starts the section afresh.
_TAGGED_SECTIONS = ("model", "lr_policy", "batch_schedule")
_DEFAULT_TAGS = {"model": "capsnet", "lr_policy": "constant", "batch_schedule": "fixed"}


def parse_override(item: str) -> tuple[str, Any]:
    """'a.b=value' -> ('a.b', value parsed as YAML)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        flag = option("set")
        raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} epochs=3")
    return key, yamlio.loads(raw, source=f"{option('set')} {key}") if raw.strip() else None


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply `a.b=value` strings to a nested config dict (copied). Errors name the override."""
    pairs = [parse_override(item) for item in overrides]
    return set_values(data, pairs, where=lambda key: f"{option('set')} {key}")


def set_values(
    data: dict[str, Any], pairs: list[tuple[str, Any]], where=lambda key: key
) -> dict[str, Any]:
    """Set dotted keys of a nested config dict (copied); `where(key)` prefixes error messages.

    Setting the `name` of a tagged section to a new value starts that section afresh, so
    keys of the old choice do not leak into the new one; those `pairs` set before it that the
    new choice has too are kept (`lr_policy.T_0=2` before `lr_policy.name=warm_restarts`).
    """
    data = json.loads(json.dumps(data))
    given: dict[str, dict[str, Any]] = {section: {} for section in _TAGGED_SECTIONS}
    for key, value in pairs:
        parts = key.split(".")
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if not isinstance(child, dict):
                path = ".".join(parts[: depth + 1])
                if child is None and part not in node:
                    why = explain_unknown(TrialConfig, path)
                    raise ConfigError(f"{where(key)}: {path}: {why}")
                raise ConfigError(f"{where(key)}: {path!r} is a value, not a section")
            node = child
        leaf = parts[-1]
        renamed = len(parts) == 2 and parts[0] in _TAGGED_SECTIONS and leaf == "name"
        if renamed and node.get("name") != value:
            node.clear()
            node.update(of_choice(TrialConfig, parts[0], value, given[parts[0]]))
        elif len(parts) == 2 and parts[0] in _TAGGED_SECTIONS:
            given[parts[0]][leaf] = value
        node[leaf] = value
    return data


def _validate(data: Any, source: str, combination: bool = True) -> TrialConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of config keys, got {type(data).__name__}")
    data = dict(data)
    for section, default in _DEFAULT_TAGS.items():  # a section without `name` is the default kind
        if isinstance(data.get(section), dict) and "name" not in data[section]:
            data[section] = {"name": default, **data[section]}
    try:
        context = None if combination else {"values_only": True}
        return TrialConfig.model_validate_json(json.dumps(data), strict=True, context=context)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc)}") from None
    except (TypeError, ValueError) as exc:  # json.dumps of a non-JSON value (a YAML date, say)
        raise ConfigError(f"{source}: {exc}") from None


def describe_validation_error(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """The first error of a pydantic ValidationError of `model` (default: TrialConfig) as
    'dotted.key: message'; an unknown key says the nearest key, or the choice that has it."""
    err = exc.errors()[0]
    key = dotted_key(err["loc"])
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        loc = err["loc"]
        chosen = str(loc[1]) if len(loc) > 2 and loc[0] in _TAGGED_SECTIONS else None
        msg = explain_unknown(model or TrialConfig, key, chosen)
    elif kind in ("union_tag_invalid", "literal_error"):
        expected = err.get("ctx", {}).get("expected_tags") or err.get("ctx", {}).get("expected")
        tag = err.get("ctx", {}).get("tag", err.get("input"))
        key = f"{key}.name" if kind == "union_tag_invalid" else key
        msg = f"{tag!r} is not a valid choice; choose from {expected}"
    elif kind == "union_tag_not_found":
        msg = "missing key 'name'"
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    elif kind == "missing":  # pydantic's words: "Field required"
        msg = "missing (a required key)"
    else:
        msg = f"{msg} (got {err.get('input')!r})" if "input" in err else msg
    return f"{key}: {msg}" if key else msg


def dotted_key(loc: tuple[Any, ...]) -> str:
    """('lr_policy', 'exp_decay', 'rate') -> 'lr_policy.rate'; list indices in brackets."""
    parts: list[str] = []
    for i, item in enumerate(loc):
        if i == 1 and loc[0] in _TAGGED_SECTIONS:
            continue  # the union tag pydantic inserts
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    return ".".join(parts)
