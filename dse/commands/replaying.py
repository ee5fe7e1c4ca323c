"""`dse replay`: replay search methods over a recorded grid (search/replay.py) and show each
method's share of the grid's hypervolume and of its training seconds, over seeds."""

from __future__ import annotations

import math
from pathlib import Path

from dse.commands.paths import check_output_dir, check_writable
from dse.errors import ConfigError, option
from dse.output import Rows, Shown, csv_text, file_stem
from dse.search.early_stop import DEFAULT_ETA, EarlyStop, check_eta, parse_rungs
from dse.search.estimates import ESTIMABLE
from dse.search.record_checks import complete_grid
from dse.search.recording import Recording, load_record, record_study, save_record
from dse.search.replay import GRID_METHODS, METHODS, Grid
from dse.search.replay_summary import CI_METHOD, ReplayResult, replay_methods
from dse.search.storage import DEFAULT_STORAGE

DEFAULT_METHODS = ("grid", "random", "nsga2", "tpe", "moasha")


def parse_methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    twice = [m for m in METHODS if methods.count(m) > 1]
    if unknown:
        problem = f"unknown {', '.join(unknown)}"
    elif twice:
        problem = f"{twice[0]} is listed twice"
    elif not methods:
        problem = "no method given"
    else:
        return methods
    raise ConfigError(f"{option('methods')} {text!r}: {problem}; choose from {', '.join(METHODS)}")


def moasha_if_estimable(
    recording: Recording, methods: list[str], asked: str | None
) -> tuple[list[str], str | None]:
    """The methods to replay, and a note if MO-ASHA was left out: it ranks trials at a rung by
    objectives estimated from their curves, which only some metrics allow (moasha.ESTIMABLE),
    and one curve per trial, which a trial of several seeds is not (`dse run` refuses early
    stopping with repeats). Asked for (`asked`: the options that asked, as the refusal names
    them), it is refused in one line instead."""
    rungs = [m for m in methods if m.startswith("moasha")]
    why = _why_no_moasha(recording)
    if not rungs or why is None:
        return methods, None
    left = [m for m in methods if m not in rungs]
    if asked is not None or not left:
        raise ConfigError(f"{asked or option('methods') + ' ' + ','.join(methods)}: {why}")
    return left, f"{', '.join(rungs)} left out: {why}"


def rule_settings(methods: list[str], rungs: str | None, eta: float | None) -> str | None:
    """'--rungs and --eta' where given (they ask for MO-ASHA), else None; given without a
    MO-ASHA method they would change nothing, so they are refused (as `dse run` refuses them
    without --early-stop)."""
    given = [option(n) for n, v in (("rungs", rungs), ("eta", eta)) if v is not None]
    if not given:
        return None
    if not any(m.startswith("moasha") for m in methods):
        raise ConfigError(
            f"{' and '.join(given)}: only with a moasha method in {option('methods')} "
            f"({','.join(methods)} has none)"
        )
    return " and ".join(given)


def _why_no_moasha(recording: Recording) -> str | None:
    unknown = [n for n in recording.metric_names if n not in ESTIMABLE]
    if unknown:
        return (
            f"study {recording.study}: objective {unknown[0]} cannot be estimated at a rung "
            f"(MO-ASHA estimates {', '.join(ESTIMABLE)})"
        )
    repeats = max(trial.config.get("repeats", 1) for trial in recording.trials)
    if repeats > 1:
        return (
            f"study {recording.study}: its trials trained {repeats} seeds each, and rungs compare "
            "one training curve per trial (dse run refuses early stopping with repeats)"
        )
    return None


def load_recording(
    storage: str | None, study: str | None, record: str | None
) -> tuple[Recording, list[str]]:
    """The grid's record of a file (--record) or of a stored study (--storage, by default the
    one every reading command reads; --study), and a note if some of its trials are off that
    grid."""
    if record is not None:
        if storage is not None:
            raise ConfigError(f"give either {option('record')} or {option('storage')}, not both")
        whole = load_record(record)
        if study is not None and study != whole.study:
            raise ConfigError(
                f"{option('study')} {study}: the record {record} holds study {whole.study}"
            )
    else:
        whole = record_study(storage or DEFAULT_STORAGE, study)
    grid = complete_grid(whole)
    return grid, _off_grid(whole, grid)


def _off_grid(whole: Recording, grid: Recording) -> list[str]:
    """A note for the trials that ran no point of the grid of the space the study was made
    with (points an --extend added, under parameters of their own): the replay leaves them out."""
    on = {trial.key for trial in grid.trials}
    off = sum(trial.key not in on for trial in whole.trials)
    if not off:
        return []
    return [
        f"study {grid.study}: {off} trial(s) ran points off the grid of the space it was made "
        f"with (as --extend adds); the replay covers that grid's {len(grid.trials)} points only"
    ]


def replay(
    storage: str | None = None,
    study: str | None = None,
    record: str | None = None,
    methods: str | None = None,
    budget: int | None = None,
    seeds: int = 30,
    workers: int = 2,
    rungs: str | None = None,
    eta: float | None = None,
    plot: bool = False,
    out: str = "results",
    save: str | None = None,
) -> Shown:
    """Replay each method `seeds` times over the recorded grid; `save` writes the record.
    `methods` None: DEFAULT_METHODS, less MO-ASHA where it cannot estimate the objectives."""
    chosen = parse_methods(",".join(DEFAULT_METHODS) if methods is None else methods)
    settings = rule_settings(chosen, rungs, eta)
    eta = DEFAULT_ETA if eta is None else eta
    early_stop = EarlyStop(parse_rungs(rungs) if rungs else None, check_eta(eta))
    for name, value in (("seeds", seeds), ("workers", workers), ("budget", budget or 1)):
        if value < 1:
            raise ConfigError(f"{option(name)} {value}: must be 1 or more")
    if plot:
        check_output_dir(out, "out")
    if save is not None:
        check_writable(save, "save_record")
    recording, off_grid = load_recording(storage, study, record)
    asked = f"{option('methods')} {','.join(chosen)}" if methods is not None else settings
    chosen, dropped = moasha_if_estimable(recording, chosen, asked)
    grid = Grid(recording)
    budget = budget or math.ceil(len(grid.grid) / 3)
    result = replay_methods(grid, chosen, seeds, workers, budget, early_stop)
    notes = [*off_grid, *_notes(grid, result, chosen, budget, early_stop, workers)]
    if dropped:
        notes.append(dropped)
    if save is not None:
        notes.append(f"record written to {save_record(recording, save)}")
    if plot:
        from dse.report.replay_plot import write_replay_plot

        size = f"{_count(len(grid.grid), 'point')}, {_count(workers, 'worker')}"
        title = f"replay of {recording.study}: {size}"
        path = write_replay_plot(
            result.summaries, title, Path(out) / f"replay_{file_stem(recording.study)}.html"
        )
        notes.append(f"figure written to {path}")
    rows = [_table_row(s.row()) for s in result.summaries]
    data = [{**s.row(), "hv_curve": s.curve_json()} for s in result.summaries]
    title = f"replay of study {recording.study} ({_count(len(grid.grid), 'point')})"
    table = csv_text([_csv_row(s.row()) for s in result.summaries])
    return Shown(tables=[Rows(rows, title)], data=data, csv=table, notes=notes)


def _notes(
    grid: Grid,
    result: ReplayResult,
    methods: list[str],
    budget: int,
    early_stop: EarlyStop,
    workers: int,
) -> list[str]:
    names = grid.recording.metric_names
    reference = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, grid.reference, strict=True))
    # say only what the methods that ran were given
    sampled = [m for m in methods if m not in GRID_METHODS]
    given = [_count(workers, "virtual worker")]
    if sampled:
        trials = min(budget, len(grid.grid))
        given.append(f"{'/'.join(sampled)}: {_count(trials, 'trial')} (each point at most once)")
    if any(m.startswith("moasha") for m in methods):
        rungs = _describe_rungs(early_stop, grid.run_lengths)
        given.append(f"moasha: rungs {rungs}, eta {early_stop.eta:.12g}")
    return [
        f"grid: {_count(len(grid.grid), 'point')}, {grid.compute_s:.0f} training seconds, "
        f"hypervolume {grid.hypervolume:.5g} (reference point {reference})",
        f"{'; '.join(given)}; intervals: 95%, {CI_METHOD}",
        f"replayed in {result.wall_s:.1f} s",
        *(_idle_rungs(grid, early_stop) if any(m.startswith("moasha") for m in methods) else []),
    ]


def _describe_rungs(early_stop: EarlyStop, lengths: list[int]) -> str:
    """The rungs given, or successive halving's for each run length of the grid (its runs of
    different epochs wait at different rungs, the shorter ones maybe at none)."""
    if early_stop.rungs is not None or len(lengths) == 1:
        return early_stop.describe(lengths[-1])
    each = [
        f"{','.join(map(str, early_stop.rungs_for(n))) or 'none'} for runs of {n} epochs"
        for n in reversed(lengths)
    ]
    return f"{', '.join(each)} (successive halving's)"


def _idle_rungs(grid: Grid, early_stop: EarlyStop) -> list[str]:
    """A note when some rungs are at or past every trial's last epoch: MO-ASHA decides
    nothing there (as live)."""
    last = grid.epochs
    if early_stop.rungs is None:
        if early_stop.rungs_for(last):
            return []
        return [
            f"successive halving has no rung for runs of {last} epochs with eta "
            f"{early_stop.eta:.12g}, so MO-ASHA stops nothing (pass {option('rungs')})"
        ]
    note = early_stop.idle_rungs_note(last, longest=len(grid.run_lengths) > 1)
    return [note] if note else []


def _count(n: int, thing: str) -> str:
    """'1 point', '2 points'."""
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _csv_row(row: dict) -> dict:
    """Intervals as `_low` and `_high` columns, every number in full (as in JSON)."""
    cells: dict = {}
    for key, value in row.items():
        if isinstance(value, list):
            cells[f"{key}_low"], cells[f"{key}_high"] = value
        else:
            cells[key] = value
    return cells


def _table_row(row: dict) -> dict:
    """Intervals as `low..high` text on the terminal (JSON keeps [low, high])."""
    return {k: f"{v[0]:.4g}..{v[1]:.4g}" if isinstance(v, list) else v for k, v in row.items()}
