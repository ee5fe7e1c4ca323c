"""Reading results: the front (and its report), every trial, the studies, an exported config;
and the shipped spaces."""

from __future__ import annotations

from pathlib import Path

from dse.commands.exploring import front_shown
from dse.commands.paths import check_output_dir, check_writable
from dse.errors import ConfigError, choose_from, option
from dse.files import publish
from dse.output import Rows, Shown
from dse.search.columns import PARAMS_PREFIX
from dse.search.storage import DEFAULT_STORAGE


def pareto(
    storage: str = DEFAULT_STORAGE,
    study: str | None = None,
    plot: bool = False,
    out: str = "results",
    robust: float | None = None,
    color_by: str | None = None,
) -> Shown:
    """The Pareto-optimal trials; with `plot` the HTML report (and a PNG) in `out`, its other
    trials coloured by the axis `color_by` (by default the one that explains most of the first
    objective). The hypervolume, its reference point and the compute spent go to stderr."""
    from dse.measure.calibrate import noise_warnings, threads_notes
    from dse.search import results

    if color_by is not None and not plot:
        raise ConfigError(
            f"{option('color_by')} {color_by}: it colours the report's trials; "
            f"give {option('plot')} too"
        )
    view = results.open_view(storage, study)
    results.check_front_objectives(view)
    if plot:
        from dse.report.front import check_color_by
        from dse.report.pareto_report import check_drawable

        check_drawable(view)
        check_output_dir(out, "out")
        check_color_by(view, color_by)
    rows = results.pareto_rows(view, robust)
    title = f"Pareto front of {view.study.study_name}"
    shown = front_shown(rows, title, results.front_header(view, rows))
    if view.calibration:  # front neighbours closer than the measured noise: order is noise
        shown.preface = noise_warnings(rows, view.metric_names, view.calibration)
        shown.preface += threads_notes(view.metric_names, view.calibration, view.front_threads())
    left_out = results.non_finite_note(view)
    if left_out:
        shown.notes.append(left_out)
    shown.notes.append(results.hypervolume_summary(view).describe(view.metric_names))
    if plot:
        from dse.report.pareto_report import write_report

        files = write_report(view, Path(out), color_by=color_by)
        shown.notes.append(f"report: {files.html}")
        shown.notes.append(
            f"png: {files.png}" if files.png else f"png skipped: {files.png_skipped}"
        )
    return shown


def trials(
    storage: str = DEFAULT_STORAGE, study: str | None = None, columns: str | None = None
) -> Shown:
    """Every trial: state, metrics by name (with repeats, each objective's std), params_*
    columns, where it ran, why it failed. The `columns` asked for (comma-separated), in that
    order, in a table, CSV and JSON alike; without them CSV and JSON have every column, a
    table the most telling ones that fit the terminal."""
    from dse.search import results, trials_table

    view = results.open_view(storage, study)
    frame = trials_table.trials_frame(view)
    name = view.study.study_name
    if frame.empty:  # no trial has set a parameter yet: nothing to choose columns from
        text = f"study {name!r} has no trials yet"
        return Shown(text=text, data=[], csv=frame.to_csv(index=False))
    if columns is not None:
        frame = frame[chosen_columns(columns, list(frame.columns))]
    # to_csv writes every float in full (repr); so does JSON from the rows (to_json would
    # round them to 10 significant digits, and a join of the two outputs on values fail)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    if columns is not None:
        table = Rows(rows)
    else:
        fit = telling_columns(rows, view.metric_names)
        table = Rows(
            rows, fit=fit, left_out=f"pick with {option('columns')}; csv and json have all"
        )
    return Shown(tables=[table], data=rows, csv=frame.to_csv(index=False))


def chosen_columns(asked: str, known: list[str]) -> list[str]:
    """`--columns number,val_accuracy,model.routing_iterations`: a parameter may be named
    without its params_ prefix."""
    chosen = []
    for name in (n.strip() for n in asked.split(",") if n.strip()):
        column = name if name in known else f"{PARAMS_PREFIX}{name}"
        if column not in known:
            raise ConfigError(choose_from(option("columns"), name, known))
        if column not in chosen:  # asked twice (or with and without params_): shown once
            chosen.append(column)
    if not chosen:
        raise ConfigError(f"{option('columns')} {asked!r}: name at least one column")
    return chosen


def telling_columns(rows: list[dict], objectives: list[str]) -> list[str]:
    """The columns a table shows first, most telling first: the trial, its state, its
    objectives (and their std), why it failed, its parameters, its time and place, the other
    metrics. Columns empty in every row, and `feasible` without constraints, are left out."""
    names = list(rows[0])
    first = ["number", "state", *(c for m in objectives for c in (m, f"{m}_std"))]
    then = ["error", *(c for c in names if c.startswith(PARAMS_PREFIX)), "duration_s", "device"]
    order = list(dict.fromkeys([*first, *then, *names]))
    useless = {"feasible"} if all(row.get("feasible") is not False for row in rows) else set()
    present = {c for c in names if any(row.get(c) is not None for row in rows)}
    return [c for c in order if c in present and c not in useless]


def studies(storage: str = DEFAULT_STORAGE) -> Shown:
    """The studies in a results database, with trial counts."""
    from dse.search import results

    return Shown(tables=[Rows(results.study_rows(storage))])


def export(
    trial: int | None = None,
    pick: str | None = None,
    storage: str = DEFAULT_STORAGE,
    study: str | None = None,
    out: str | None = None,
) -> Shown:
    """The complete TrialConfig of a trial (by number, or picked from the front), as YAML to
    retrain it; written to `out` if given."""
    from dse.search import picks, results

    if (trial is None) == (pick is None):
        raise ConfigError(
            f"give exactly one of {option('trial')} N or {option('pick')} "
            "knee|fastest|most-accurate"
        )
    if pick is not None and pick not in picks.PICKS:
        raise ConfigError(choose_from(option("pick"), pick, picks.PICKS))
    if out:
        check_writable(out, "out")
    view = results.open_view(storage, study)
    chosen = picks.trial_by_number(view, trial) if trial is not None else picks.pick(view, pick)
    text = picks.exported_config(chosen).to_yaml()
    notes = [picks.describe_choice(view, chosen, pick)]
    if out:
        publish(out, text)
        notes.append(f"trial {chosen.number} -> {out}")
    return Shown(text=None if out else text, notes=notes)


def spaces() -> Shown:
    """The search spaces shipped with dse (usable by file name: --space quick.yaml)."""
    from dse.space import load_space, shipped_spaces

    rows = []
    for name, path in sorted(shipped_spaces().items()):
        space = load_space(str(path))
        rows.append(
            {
                "space": name,
                "grid": space.grid_size() if space.finite else "-",
                "n_trials": space.n_trials or "grid",
                "objectives": ", ".join(space.metric_names),
                "description": space.description or "",
            }
        )
    return Shown(tables=[Rows(rows)])
