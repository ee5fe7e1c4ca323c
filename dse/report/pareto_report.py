"""The Pareto report: an interactive HTML page (plotly) and, when a browser is present, a PNG.

The front's table; objective 1 against objective 2 with the region the front dominates and
the other trials coloured by an axis (report/front.py; a 3-D view for three objectives); what
each choice of each axis buys in each objective; the learning curves of the front's trials;
the hypervolume against trials finished and against training compute (report/panels.py).
Hover shows each configuration. plotly.js is embedded, so the page opens offline.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
from optuna.trial import TrialState

from dse.errors import ConfigError, option
from dse.files import publish
from dse.output import file_stem
from dse.report.front import (
    check_color_by,
    missed_constraints,
    pareto_figure,
    pareto_figure_3d,
)
from dse.report.panels import curves_figure, effects_figure, hypervolume_figure
from dse.search.results import StudyView, params_as_run, robustness


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    png: Path | None
    png_skipped: str | None  # why there is no PNG


def _front_table(view: StudyView) -> str:
    chance = robustness(view)
    columns = ["trial", *view.metric_names, *(["P(non-dominated)"] if chance else []), "params"]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in columns)
    rows = []
    for t in view.front():
        values = "".join(f"<td>{v:.4g}</td>" for v in t.values)
        if chance:
            values += f"<td>{chance[t.number]:.2f}</td>"
        params = html.escape(", ".join(f"{k}={v}" for k, v in params_as_run(t).items()))
        rows.append(f"<tr><td>{t.number}</td>{values}<td>{params}</td></tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


# Each panel's caption: what it shows and how to read it.
FRONT_NOTE = (
    "The shaded staircase is the region the front dominates, up to the hypervolume's "
    "reference point: its area is the hypervolume. Diamonds are the front's trials; the other "
    "trials are coloured by one axis of the space. Hover a point for its configuration."
)
EFFECTS_NOTE = (
    "For each value of each axis: the mean of an objective over the trials with that value "
    "minus its mean over the trials that set the axis to another value, with one standard "
    "error of the difference. Differences between observed trials, not causes: axes sampled "
    "together confound each other."
)
THREE_NOTE = "All three objectives; the front in red. Drag to turn the view."
CURVES_NOTE = "Validation accuracy after each epoch of the front's trials."
NO_CURVES = "No front trial has a stored learning curve (a study from an earlier version)."
NO_EFFECTS = "No axis takes more than one value among the complete feasible trials."
HYPERVOLUME_NOTE = "How fast the search found the front: hypervolume after each finished trial."
NO_FRONT_CURVES = "No front, so no learning curves."

# How the page and the line that says why nothing can be drawn count a study's trials.
STATE_WORDS = {
    TrialState.COMPLETE: "complete",
    TrialState.FAIL: "failed",
    TrialState.PRUNED: "stopped early",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


def state_counts(states: Iterable[TrialState], complete: str = "complete") -> str:
    """`7 complete, 4 failed, 1 stopped early`: trials by state (`complete`: what a complete
    one is called where it gave nothing to show)."""
    counts = Counter(states)
    words = {**STATE_WORDS, TrialState.COMPLETE: complete}
    return ", ".join(f"{counts[state]} {word}" for state, word in words.items() if counts[state])


def trial_counts(view: StudyView, complete: str = "complete") -> str:
    """The study's trials by state (state_counts)."""
    return state_counts((t.state for t in view.trials()), complete)


def check_drawable(view: StudyView) -> None:
    """A report needs one complete trial to draw: else one line that counts what there is."""
    if view.complete():
        return
    name = view.study.study_name
    if not view.trials():
        raise ConfigError(f"{option('plot')}: study {name!r} has no trials yet")
    held = trial_counts(view, complete="complete with a non-finite value")
    raise ConfigError(f"{option('plot')}: study {name!r} has no complete trial to draw ({held})")


def front_note(view: StudyView) -> str:
    """The front figure's caption: what it draws, for two objectives or three, and why a
    study whose complete trials all miss a constraint has no front."""
    if not view.front():
        missed = ", ".join(missed_constraints(view))
        return (
            f"No complete trial meets every constraint ({missed}), so there is no "
            "front. The crosses are the complete trials; hover one for its values."
        )
    if len(view.metric_names) == 3:
        return (
            f"The first two of three objectives. The front is chosen on all three: a diamond "
            f"that another trial beats here does better in {view.metric_names[2]}. The other "
            "trials are coloured by one axis of the space; crosses miss a constraint."
        )
    return FRONT_NOTE


def _sections(view: StudyView, color_by: str | None) -> list[tuple[str, str, go.Figure | None]]:
    """The page's panels in order: heading, caption, figure (None: the caption says why)."""
    sections = [("The front", front_note(view), pareto_figure(view, color_by))]
    if len(view.metric_names) == 3:
        sections.append(("Three objectives", THREE_NOTE, pareto_figure_3d(view)))
    effects = effects_figure(view)
    sections.append(
        ("What does each choice buy?", EFFECTS_NOTE if effects else NO_EFFECTS, effects)
    )
    curves = curves_figure(view)
    no_curves = NO_CURVES if view.front() else NO_FRONT_CURVES
    sections.append(("Learning curves", CURVES_NOTE if curves else no_curves, curves))
    sections.append(("Hypervolume", HYPERVOLUME_NOTE, hypervolume_figure(view)))
    return sections


def write_report(
    view: StudyView, out_dir: Path, png: bool = True, color_by: str | None = None
) -> ReportFiles:
    """The HTML report in `out_dir` (and the front's PNG when `png` and kaleido can). The other
    trials are coloured by the axis `color_by`, by default the one that explains most of the
    first objective."""
    check_drawable(view)
    check_color_by(view, color_by)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = _sections(view, color_by)
    figures = [fig for _, _, fig in sections if fig is not None]
    parts, drawn = [], 0
    for heading, note, fig in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2><p class='note'>{html.escape(note)}</p>")
        if fig is not None:  # plotly.js goes with the first figure
            parts.append(
                fig.to_html(full_html=False, include_plotlyjs=drawn == 0, div_id=f"figure-{drawn}")
            )
            drawn += 1
    name = view.study.study_name
    count = len(view.trials())
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>dse: {html.escape(name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"
        "h2{margin:1.6em 0 0.2em}.note{color:#555;max-width:60em;margin:0.2em 0}"
        "</style></head><body>"
        f"<h1>Study {html.escape(name)}</h1>"
        f"<p>{count} trial{'' if count == 1 else 's'} ({trial_counts(view)}), "
        f"{len(view.front())} on the Pareto front.</p>"
        f"{_front_table(view)}{''.join(parts)}</body></html>"
    )
    html_path = out_dir / f"{file_stem(name)}-pareto.html"
    publish(html_path, page)
    png_path = out_dir / f"{file_stem(name)}-pareto.png"
    reason = _write_png(figures[0], png_path) if png else "not asked for"
    if reason is None:
        return ReportFiles(html_path, png_path, None)
    return ReportFiles(html_path, None, reason + _removed_stale(png_path))


def _removed_stale(png_path: Path) -> str:
    """Remove the PNG an earlier report left where this one's would be: beside the new HTML
    it would show an older state of the study as this one's. What to add to the reason."""
    if not png_path.is_file():
        return ""
    try:
        png_path.unlink()
    except OSError as error:
        return f"; {png_path} is an earlier report's and could not be removed ({error})"
    return f"; removed {png_path.name}, an earlier report's"


def _write_png(fig: go.Figure, path: Path) -> str | None:
    """Write a PNG with kaleido; the reason it could not, or None."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return "kaleido is not installed (pip install kaleido)"
    try:
        png = fig.to_image(format="png", width=1000, height=650)
    except Exception as exc:  # no browser for kaleido, or it failed to start
        return f"kaleido could not render ({' '.join(str(exc).split())[:160]})"
    publish(path, png)
    return None
