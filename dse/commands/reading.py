"""Reading results: the front (and its report), every trial, the studies, an exported config;
and the shipped spaces."""

from __future__ import annotations

import json
from pathlib import Path

from dse.commands.exploring import front_shown
from dse.commands.paths import check_output_dir, check_writable
from dse.errors import ConfigError, option
from dse.output import Rows, Shown
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
    from dse.measure.calibrate import noise_warnings
    from dse.search import results

    if color_by is not None and not plot:
        raise ConfigError(
            f"{option('color_by')} {color_by}: it colours the report's trials; "
            f"give {option('plot')} too"
        )
    view = results.open_view(storage, study)
    if plot:
        from dse.report.front import check_color_by

        check_output_dir(out, "out")
        check_color_by(view, color_by)
    rows = results.pareto_rows(view, robust)
    shown = front_shown(rows, f"Pareto front of {view.study.study_name}")
    if view.calibration:  # front neighbours closer than the measured noise: order is noise
        shown.preface = noise_warnings(rows, view.metric_names, view.calibration)
    shown.notes.append(results.hypervolume_summary(view).describe(view.metric_names))
    if plot:
        from dse.report.pareto_report import write_report

        files = write_report(view, Path(out), color_by=color_by)
        shown.notes.append(f"report: {files.html}")
        shown.notes.append(
            f"png: {files.png}" if files.png else f"png skipped: {files.png_skipped}"
        )
    return shown


def trials(storage: str = DEFAULT_STORAGE, study: str | None = None) -> Shown:
    """Every trial: state, metrics by name, params_* columns, device, error (tables leave
    out host and error; CSV and JSON have every column)."""
    from dse.search import results

    frame = results.trials_frame(results.open_view(storage, study))
    shown = frame.drop(columns=["host", "error"], errors="ignore")
    table = shown.astype(object).where(shown.notna(), None).to_dict("records")
    return Shown(
        tables=[Rows(table)],
        data=json.loads(frame.to_json(orient="records")),
        csv=frame.to_csv(index=False),
    )


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
    from dse.search import results

    if (trial is None) == (pick is None):
        raise ConfigError(
            f"give exactly one of {option('trial')} N or {option('pick')} "
            "knee|fastest|most-accurate"
        )
    if pick is not None and pick not in results.PICKS:
        raise ConfigError(f"{option('pick')} {pick}: choose from {', '.join(results.PICKS)}")
    if out:
        check_writable(out, "out")
    view = results.open_view(storage, study)
    chosen = results.trial_by_number(view, trial) if trial is not None else results.pick(view, pick)
    text = results.exported_config(chosen).to_yaml()
    if not out:
        return Shown(text=text)
    Path(out).write_text(text, encoding="utf-8")
    return Shown(notes=[f"trial {chosen.number} -> {out}"])


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
