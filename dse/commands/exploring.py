"""Exploring a space: run (or resume) its study and show the front; reproduce the paper."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from dse.commands.paths import check_output_dir
from dse.config import DATASETS
from dse.errors import ConfigError, choose_from, option
from dse.output import Rows, Shown, csv_text, file_stem
from dse.search.columns import PARAMS_PREFIX
from dse.search.early_stop import DEFAULT_ETA, EarlyStop, check_eta, parse_rungs
from dse.search.options import RunOptions
from dse.search.recorder import RunSummary
from dse.search.runner import run_study
from dse.space import load_space

EARLY_STOP_RULES = ("moasha",)


def early_stop_from(rule: str | None, rungs: str | None = None, eta: float | None = None):
    """`--early-stop moasha --rungs 1,3,9 --eta 3` as an EarlyStop (None: no early stopping).
    Rungs or eta without a rule would be ignored, so they are refused."""
    if rule is None:
        given = [option(n) for n, v in (("rungs", rungs), ("eta", eta)) if v is not None]
        if given:
            raise ConfigError(f"{' and '.join(given)}: only with {option('early_stop')} moasha")
        return None
    if rule not in EARLY_STOP_RULES:
        raise ConfigError(choose_from(option("early_stop"), rule, EARLY_STOP_RULES))
    return EarlyStop(
        parse_rungs(rungs) if rungs is not None else None,
        check_eta(eta) if eta is not None else DEFAULT_ETA,
    )


def front_shown(rows: list[dict[str, Any]], title: str, header: list[str]) -> Shown:
    """The front: one row per member, its params flattened into params_* columns in tables,
    every row with every column of `header`, in its order (a param the member lacks: empty);
    JSON keeps each member's params as an object. An empty front is a sentence (CSV: the
    `header` alone)."""
    if not rows:
        text = f"{title}: empty (no trial is complete and feasible yet)"
        return Shown(text=text, data=[], csv=csv_text([], header))
    flat = [
        {k: v for k, v in r.items() if k != "params"}
        | {f"{PARAMS_PREFIX}{k}": v for k, v in r["params"].items()}
        for r in rows
    ]
    table = [{column: row.get(column) for column in header} for row in flat]
    return Shown(tables=[Rows(table, title)], data=rows)


def run(
    space: str,
    options: RunOptions,
    repeats: int | None = None,
    calibration: str | None = None,
    live: bool = True,
) -> Shown:
    """Run (or resume) a space's study; show the summary and the Pareto front.

    `calibration`: a `dse calibrate` file stored with the study (default: the last one
    written, when it exists); `live`: the live view, else a line per finished trial."""
    from dse.measure.calibrate import DEFAULT_PATH, load_calibration
    from dse.progress import LineReporter, LiveReporter
    from dse.search.results import front_header, open_view, pareto_rows

    loaded = load_space(space)
    if repeats is not None:
        loaded = loaded.with_repeats(repeats)
    if options.checkpoint_dir is not None and options.backend == "local":  # Dask: on the workers
        check_output_dir(options.checkpoint_dir, "checkpoint_dir")
    if calibration is None and Path(DEFAULT_PATH).is_file():
        calibration = DEFAULT_PATH
    if calibration:
        options = replace(options, calibration=load_calibration(calibration))
    summary = run_study(loaded, options, LiveReporter() if live else LineReporter())
    view = open_view(options.storage, summary.study, options.db_outage_limit, options.open_wait_s)
    rows = pareto_rows(view)
    shown = front_shown(rows, f"Pareto front of {summary.study}", front_header(view, rows))
    shown.preface = summary_lines(summary)
    if summary.every_start_failed:
        shown.notes.append(all_failed_line(summary))
        shown.exit_code = 1
    return shown


def summary_lines(summary: RunSummary) -> list[str]:
    """What a run did, and its first failures."""
    stopped = f"{summary.stopped} stopped early, " if summary.stopped else ""
    head = (
        f"study {summary.study}: {summary.complete} complete, {stopped}{summary.failed} failed "
        f"of {summary.planned} planned; {summary.pareto_size} on the Pareto front "
        f"({summary.elapsed_s:.0f}s)"
    )
    if summary.exhausted:
        head += "; every point of the space has run, so no more were sampled"
    return [head, *(f"  {failure[:200]}" for failure in summary.failures[:5])]


def all_failed_line(summary: RunSummary) -> str:
    """The last line of a run whose every trial failed: how many, and where the errors are."""
    from dse.search.outage import shown_url
    from dse.search.storage import DEFAULT_STORAGE

    storage = (
        "" if summary.storage == DEFAULT_STORAGE else f" --storage {shown_url(summary.storage)}"
    )
    first = f"; the first: {summary.first_failure[:200]}" if summary.first_failure else ""
    return (
        f"error: every trial this run started failed ({summary.started_failed} of "
        f"{summary.started}){first}; each one's error: "
        f"dse trials{storage} --study {summary.study} --columns number,error"
    )


def reproduce(
    space: str = "paper",
    options: RunOptions | None = None,
    run_first: bool = True,
    out: str = "results",
    dataset: str | None = None,
) -> Shown:
    """The paper's table beside this study's: accuracy, time and their changes vs baseline
    (runs or resumes the study first unless `run_first` is False); `dataset`: the one whose
    trials to show, in a study over several."""
    from dse.progress import LineReporter
    from dse.report import reproduce as paper
    from dse.search.results import open_view

    options = options or RunOptions()
    check_output_dir(out, "out")
    if dataset is not None and dataset not in DATASETS:
        raise ConfigError(choose_from(option("dataset"), dataset, DATASETS))
    loaded = load_space(space)
    name = options.study_name or loaded.name
    if run_first:
        run_study(loaded, replace(options, study_name=name), LineReporter())
    view = open_view(options.storage, name, options.db_outage_limit, options.open_wait_s)
    measured = paper.measured_by_preset(view, dataset)
    rows = paper.report_rows(measured)
    if not rows:
        on = f" on {dataset}" if dataset else ""
        raise ConfigError(
            f"study {name}: no complete trials{on} with a `preset` parameter of the paper's eight"
        )
    missing = paper.left_out(view, measured, dataset)
    page = paper.write_html(rows, name, Path(out) / f"reproduce-{file_stem(name)}.html", missing)
    return Shown(
        tables=[Rows(rows)],
        data={"rows": rows, "orderings": [asdict(o) for o in paper.orderings(rows)]},
        text=paper.markdown(rows, name),
        notes=[*missing, f"report: {page}"],
    )
