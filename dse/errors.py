"""Errors a user can cause. The CLI maps every DseError to one line on stderr and exit code 2."""


class DseError(Exception):
    """Base of the errors a user can cause and fix (bad file, bad value, missing data)."""


class ConfigError(DseError):
    """A configuration file, preset name or --set override is invalid."""


class DataError(DseError):
    """A dataset is missing, corrupt or in the wrong format."""


class TrainingError(DseError):
    """A run failed for a reason the configuration causes (for example a diverging loss)."""


class NonFiniteLossError(TrainingError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int):
        super().__init__(f"non-finite loss at epoch {epoch}, step {step}")
        self.epoch = epoch
        self.step = step
