"""The front figures of the report: objective 1 against objective 2 with the region the front
dominates drawn as a staircase, the other trials coloured by an axis of the space; and a 3-D
view for three objectives.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import plotly.graph_objects as go
from optuna.trial import FrozenTrial

from dse.errors import ConfigError, option
from dse.report.effects import Levels, Point, explained, levels, most_explaining
from dse.search.records import TrialRecord
from dse.search.results import (
    StudyView,
    failed_constraints,
    objective_values,
    params_as_run,
    reference_point,
    robustness,
)

FRONT_RED = "#d62728"
# Discrete colours of an axis' values: plotly's D3 palette without the front's red and grey.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
NOT_SET = "#c7c7c7"  # trials that do not set the axis (a sub-axis of another choice)
INFEASIBLE = {"color": "#e0b4b4", "symbol": "x"}  # complete trials that miss a constraint


def plain(text: object) -> str:
    """Free text (a study's name, a parameter's value) as plotly shows it: its titles, legends
    and hover labels read `<b>`, `<br>` and the like as markup, and drop what they do not know."""
    return html.escape(str(text), quote=False)


def hover(view: StudyView, trial: FrozenTrial, chance: dict[int, float] | None = None) -> str:
    """A trial's objectives (± std over seeds), P(non-dominated), params and device."""
    values = objective_values(view, trial)
    record = TrialRecord(trial)
    std = record.seed_std
    lines = [f"<b>trial {trial.number}</b>"]
    lines += [
        f"{k}: {v:.4g}"
        + (f" ± {std[k]:.2g} (std over {len(record.per_seed)} seeds)" if k in std else "")
        for k, v in values.items()
    ]
    if chance and trial.number in chance:
        lines.append(f"P(non-dominated over seeds): {chance[trial.number]:.2f}")
    lines += [f"{plain(k)}: {plain(v)}" for k, v in params_as_run(trial).items()]
    if record.device:
        lines.append(f"device: {record.device}")
    return "<br>".join(lines)


@dataclass(frozen=True)
class Colouring:
    """The axis that colours the trials, why it was chosen, and its levels over the feasible
    complete trials (`feasible`, in the order the levels index)."""

    axis: str
    why: str
    levels: Levels
    feasible: list[FrozenTrial]


def check_color_by(view: StudyView, color_by: str | None) -> None:
    """An axis to colour by must be one of the study's parameters."""
    axes = view.axes()
    if color_by is not None and color_by not in axes:
        raise ConfigError(
            f"{option('color_by')} {color_by!r}: study {view.study.study_name!r} has no such "
            f"axis (its axes: {', '.join(axes) or 'none'})"
        )


def colouring(view: StudyView, color_by: str | None = None) -> Colouring | None:
    """`color_by`, or else the axis that explains most of the first objective's variance
    among the feasible complete trials (report.effects.explained); None when no axis varies
    there or none explains a share of it."""
    check_color_by(view, color_by)
    feasible = view.feasible()
    points = [Point(params_as_run(t), tuple(t.values)) for t in feasible]
    if color_by is not None:
        return Colouring(color_by, "chosen", levels(points, color_by), feasible)
    axis = most_explaining(points)
    if axis is None:
        return None
    share, grouping = explained(points, axis), levels(points, axis)
    why = (
        f"explains {share:.0%} of the variance of {view.metric_names[0]} allowing for its "
        f"{len(grouping.labels)} {'halves' if grouping.split else 'values'}, the most of any axis"
    )
    return Colouring(axis, why, grouping, feasible)


def _error_bars(trials: list[FrozenTrial], metric: str) -> dict | None:
    """One std over the seeds (trials with repeats); None when no trial has repeats."""
    std = [TrialRecord(t).seed_std.get(metric) for t in trials]
    if all(s is None for s in std):
        return None
    return {"type": "data", "array": [s or 0.0 for s in std], "visible": True}


def staircase(view: StudyView, front: list[FrozenTrial]) -> go.Scatter | None:
    """The region the front dominates, up to the hypervolume's reference point (its area is
    the hypervolume), outlined by the attainment staircase. Two objectives only."""
    ref = reference_point(view)
    if not front or ref is None or len(view.metric_names) != 2:
        return None
    points = sorted((t.values[0], t.values[1]) for t in front)
    (x0, y0), (x1, y1) = points[0], points[-1]
    if view.directions[0] == "minimize":  # the steps run right along x, then up or down
        path, shape = [(x0, ref[1]), *points, (ref[0], y1)], "hv"
    else:  # a maximized x: the best x is last, the steps run up or down first
        path, shape = [(ref[0], y0), *points, (x1, ref[1])], "vh"
    path.append((ref[0], ref[1]))  # the reference corner closes the region
    return go.Scatter(
        x=[p[0] for p in path],
        y=[p[1] for p in path],
        mode="lines",
        line={"shape": shape, "color": FRONT_RED, "width": 2},
        fill="toself",
        fillcolor="rgba(214, 39, 40, 0.07)",
        name="what the front dominates",
        hoverinfo="skip",
    )


def _trial_traces(
    view: StudyView, trials: list[FrozenTrial], colour: Colouring | None
) -> list[go.Scatter]:
    """The feasible trials off the front, one trace per value of the colouring axis (or one
    trace on a colour scale for a many-valued numeric axis)."""

    def scatter(group: list[FrozenTrial], name: str, marker: dict) -> go.Scatter:
        return go.Scatter(
            x=[t.values[0] for t in group],
            y=[t.values[1] for t in group],
            mode="markers",
            marker={"size": 9, "line": {"width": 0.5, "color": "white"}, **marker},
            name=name,
            text=[hover(view, t) for t in group],
            hovertemplate="%{text}<extra></extra>",
        )

    if colour is None:
        return [scatter(trials, "trials", {"color": "#9aa5b1"})]
    position = {t.number: i for i, t in enumerate(colour.feasible)}
    label = {t.number: colour.levels.label_of(position[t.number]) for t in trials}
    unset = [t for t in trials if label[t.number] is None]
    traces = []
    if colour.levels.split:  # many numeric values: a colour scale over the raw values
        valued = [t for t in trials if label[t.number] is not None]
        bar = {"title": {"text": colour.axis, "side": "right"}, "len": 0.6}
        values = [params_as_run(t)[colour.axis] for t in valued]
        marker = {"color": values, "colorscale": "Viridis", "colorbar": bar, "showscale": True}
        traces.append(scatter(valued, colour.axis, marker))
    else:
        for k, level in enumerate(colour.levels.labels):
            group = [t for t in trials if label[t.number] == level]
            if group:  # a value's colour stays the same whichever values are drawn
                colour_k = PALETTE[k % len(PALETTE)]
                traces.append(
                    scatter(group, f"{colour.axis} = {plain(level)}", {"color": colour_k})
                )
    if unset:
        traces.append(scatter(unset, f"{colour.axis} not set", {"color": NOT_SET}))
    return traces


def pareto_figure(view: StudyView, color_by: str | None = None) -> go.Figure:
    """Objective 1 against objective 2: the region the front dominates, the front's members,
    the other feasible trials coloured by an axis (`color_by`, or the one that explains most
    of objective 1) and the infeasible trials."""
    names = view.metric_names
    front = view.front()
    on_front = {t.number for t in front}
    feasible = view.feasible()
    others = [t for t in feasible if t.number not in on_front]
    # no trial to colour (every one on the front or infeasible): no colour to name
    colour = colouring(view, color_by) if others else None
    complete = view.complete()
    meets = {t.number for t in feasible}
    infeasible = [t for t in complete if t.number not in meets]
    chance = robustness(view)
    fig = go.Figure()
    region = staircase(view, front)
    if region is not None:
        fig.add_trace(region)
    for trace in _trial_traces(view, others, colour) if others else []:
        fig.add_trace(trace)
    for label, trials, style in (
        ("infeasible", infeasible, {**INFEASIBLE, "size": 8}),
        ("Pareto front", front, {"color": FRONT_RED, "size": 12, "symbol": "diamond"}),
    ):
        if not trials and label == "infeasible":
            continue
        fig.add_trace(
            go.Scatter(
                x=[t.values[0] for t in trials],
                y=[t.values[1] for t in trials],
                mode="markers",
                marker={**style, "line": {"width": 1, "color": "#5c1010"}},
                name=label,
                text=[hover(view, t, chance) for t in trials],
                hovertemplate="%{text}<extra></extra>",
                error_x=_error_bars(trials, names[0]),
                error_y=_error_bars(trials, names[1]),
            )
        )
    fig.update_layout(
        title={
            "text": f"{plain(view.study.study_name)}: {names[0]} vs {names[1]}<br>"
            f"<sup>{plain(subtitle(view, colour, front))}</sup>"
        },
        showlegend=True,  # plotly hides the legend of a single trace: the crosses need theirs
        xaxis_title=f"{names[0]} ({view.directions[0]})",
        yaxis_title=f"{names[1]} ({view.directions[1]})",
        legend_title_text=f"colour: {colour.axis}" if colour else None,
        template="plotly_white",
        height=560,
    )
    return fig


def subtitle(view: StudyView, colour: Colouring | None, front: list[FrozenTrial]) -> str:
    """What the figure alone (the PNG) must say: how the others are coloured, that a front of
    three objectives is drawn on two, and why there is no front."""
    parts = [f"other trials coloured by {colour.axis} ({colour.why})"] if colour else []
    if len(view.metric_names) == 3 and front:
        parts.append(f"the front is chosen on {view.metric_names[2]} too")
    if not front:
        parts.append(f"no front: no complete trial meets {' and '.join(missed_constraints(view))}")
    return "; ".join(parts)


def missed_constraints(view: StudyView) -> list[str]:
    """The constraints some complete trial misses, as the space file writes them."""
    return sorted({c for t in view.complete() for c in failed_constraints(t)})


def pareto_figure_3d(view: StudyView) -> go.Figure:
    names = view.metric_names
    front = view.front()
    on_front = {t.number for t in front}
    meets = {t.number for t in view.feasible()}
    complete = view.complete()
    fig = go.Figure()
    for label, trials, marker in (
        ("trials", [t for t in complete if t.number in meets - on_front], {"color": "#9aa5b1"}),
        ("infeasible", [t for t in complete if t.number not in meets], INFEASIBLE),
        ("Pareto front", front, {"color": FRONT_RED}),
    ):
        if not trials:
            continue
        fig.add_trace(
            go.Scatter3d(
                x=[t.values[0] for t in trials],
                y=[t.values[1] for t in trials],
                z=[t.values[2] for t in trials],
                mode="markers",
                name=label,
                marker={**marker, "size": 5},
                text=[hover(view, t) for t in trials],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"{plain(view.study.study_name)}: three objectives",
        scene={"xaxis_title": names[0], "yaxis_title": names[1], "zaxis_title": names[2]},
        template="plotly_white",
    )
    return fig
