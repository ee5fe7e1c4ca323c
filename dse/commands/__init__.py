"""The command layer: each job of the CLI as a function of plain arguments that returns what
it shows (output.Shown). The CLI parses and prints; Python callers get the same jobs."""

from dse.commands.exploring import DATASETS, EARLY_STOP_RULES, early_stop_from, reproduce, run
from dse.commands.figures import accuracy_report, inspect
from dse.commands.measuring import MODES, PROFILE_VIEWS, bench, calibrate, profile
from dse.commands.reading import export, pareto, spaces, studies, trials
from dse.commands.replaying import DEFAULT_METHODS as REPLAY_METHODS
from dse.commands.replaying import replay
from dse.commands.training import SPLITS, evaluate, presets, show_config, summary, train
from dse.measure.calibrate import DEFAULT_PATH as CALIBRATION_PATH
from dse.search.options import BACKENDS, RunOptions
from dse.search.outage import DEFAULT_OUTAGE_LIMIT_S
from dse.search.picks import PICKS
from dse.search.signals import signal_of, sigterm_as_interrupt
from dse.search.storage import DEFAULT_STORAGE
from dse.search.study import SAMPLERS
from dse.train.memory import out_of_memory_error

__all__ = [
    "BACKENDS",
    "CALIBRATION_PATH",
    "DATASETS",
    "DEFAULT_OUTAGE_LIMIT_S",
    "DEFAULT_STORAGE",
    "EARLY_STOP_RULES",
    "MODES",
    "PICKS",
    "PROFILE_VIEWS",
    "REPLAY_METHODS",
    "SAMPLERS",
    "SPLITS",
    "RunOptions",
    "accuracy_report",
    "bench",
    "calibrate",
    "early_stop_from",
    "evaluate",
    "export",
    "inspect",
    "out_of_memory_error",
    "pareto",
    "presets",
    "profile",
    "replay",
    "reproduce",
    "run",
    "show_config",
    "signal_of",
    "sigterm_as_interrupt",
    "spaces",
    "studies",
    "summary",
    "train",
    "trials",
]
