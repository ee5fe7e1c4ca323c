"""The report's panels under the front: what each choice buys (report/effects.py's numbers),
the learning curves of the front's trials, and the hypervolume over the study.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dse.report.effects import Effect, Point, effects
from dse.report.front import PALETTE
from dse.search.records import TrialRecord
from dse.search.results import (
    StudyView,
    hypervolume_history,
    params_as_run,
    ran_on_gpu,
    reference_from,
)

# Bars that favour the objective are green, the others orange; pale when the difference is
# within two standard errors (or has none: a side with a single trial).
BETTER, BETTER_PALE, WORSE, WORSE_PALE = "#2ca02c", "#b5deb5", "#ff7f0e", "#ffd2a8"


def _bar_colour(effect: Effect, direction: str) -> str:
    better = (effect.difference < 0) == (direction == "minimize")
    clear = effect.stderr is not None and abs(effect.difference) > 2 * effect.stderr
    if better:
        return BETTER if clear else BETTER_PALE
    return WORSE if clear else WORSE_PALE


def _effect_hover(effect: Effect) -> str:
    spread = f" ± {effect.stderr:.2g}" if effect.stderr is not None else " (no s.e.: one trial)"
    return (
        f"<b>{effect.axis} = {effect.level}</b><br>{effect.metric}: mean {effect.mean:.4g} "
        f"over {effect.n} trials vs {effect.mean_other:.4g} over the {effect.n_other} others"
        f"<br>difference {effect.difference:+.4g}{spread}"
    )


def effects_figure(view: StudyView) -> go.Figure | None:
    """A panel per objective: each axis value's mean difference against the other trials
    (those that set the axis otherwise), ±1 standard error. None when no axis varies."""
    names, directions = view.metric_names, view.directions
    feasible = view.feasible()
    found = effects([Point(params_as_run(t), tuple(t.values)) for t in feasible], names)
    if not found:
        return None
    titles = [
        f"{m}: {'lower' if d == 'minimize' else 'higher'} is better"
        for m, d in zip(names, directions, strict=True)
    ]
    fig = make_subplots(
        rows=1, cols=len(names), shared_yaxes=True, subplot_titles=titles, horizontal_spacing=0.05
    )
    for col, (metric, direction) in enumerate(zip(names, directions, strict=True), start=1):
        mine = [e for e in found if e.metric == metric]
        fig.add_trace(
            go.Bar(
                x=[e.difference for e in mine],
                y=[f"{e.axis} = {e.level}" for e in mine],
                orientation="h",
                marker_color=[_bar_colour(e, direction) for e in mine],
                error_x={
                    "type": "data",
                    "array": [e.stderr or 0.0 for e in mine],
                    "visible": True,
                    "color": "#444",
                },
                text=[_effect_hover(e) for e in mine],
                textposition="none",
                hovertemplate="%{text}<extra></extra>",
                name=metric,
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        fig.add_vline(x=0, line_width=1, line_color="#444", row=1, col=col)
        fig.update_xaxes(title_text=f"Δ {metric}", row=1, col=col)
    rows = len(found) // len(names)
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_layout(
        title={
            "text": "Each axis value: mean difference vs the other trials, ±1 s.e."
            f"<br><sup>{len(feasible)} complete feasible trials; each value against the trials "
            "that set its axis otherwise; green: better for the objective, pale: within 2 s.e."
        },
        template="plotly_white",
        height=170 + 30 * rows,
        margin={"t": 110},
        bargap=0.35,
    )
    return fig


def curves_figure(view: StudyView) -> go.Figure | None:
    """Validation accuracy against epoch and against training seconds, a line per front trial
    that has a stored curve (studies from before curves were stored have none: None)."""
    front = view.front()
    curves = [(t, TrialRecord(t).curve) for t in front]
    curves = [(t, c) for t, c in curves if c]
    if not curves:
        return None
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("by epoch", "by training seconds"),
        horizontal_spacing=0.08,
    )
    for k, (trial, curve) in enumerate(curves):
        text = [
            f"<b>trial {trial.number}</b><br>epoch {p.epoch} (batch {p.batch_size})<br>"
            f"{p.elapsed_train_s:.4g} training s<br>val accuracy {p.val_accuracy:.4g}"
            for p in curve
        ]
        for col, x in ((1, [p.epoch for p in curve]), (2, [p.elapsed_train_s for p in curve])):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[p.val_accuracy for p in curve],
                    mode="lines+markers",
                    line={"color": PALETTE[k % len(PALETTE)]},
                    name=f"trial {trial.number}",
                    legendgroup=f"trial {trial.number}",
                    showlegend=col == 1,
                    text=text,
                    hovertemplate="%{text}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    epochs = max(p.epoch for _, c in curves for p in c)
    fig.update_xaxes(title_text="epoch", dtick=whole_step(epochs), tickformat="d", row=1, col=1)
    fig.update_xaxes(title_text="training seconds", rangemode="tozero", row=1, col=2)
    fig.update_yaxes(title_text="validation accuracy", row=1, col=1)
    fig.update_layout(
        title=f"Learning curves of the front ({len(curves)} of {len(front)} front trials "
        "have a stored curve)",
        legend_title_text="front trial",
        template="plotly_white",
    )
    return fig


def whole_step(count: int, ticks: int = 10) -> int:
    """A tick step of whole numbers (1, 2, 5, 10, 20, 50, ...) that gives at most about
    `ticks` ticks up to `count`."""
    step = 1
    while count / step > ticks:
        for factor in (2, 5, 10):
            if count / (step * factor) <= ticks or factor == 10:
                step *= factor
                break
    return step


def hypervolume_figure(view: StudyView) -> go.Figure:
    """Hypervolume after each finished trial: against trials, and against training compute."""
    history = hypervolume_history(view)
    gpu = ran_on_gpu(view)
    compute = [p.compute_s / 3600 if gpu else p.compute_s for p in history]
    unit = "GPU-hours" if gpu else "training seconds"
    fig = make_subplots(rows=1, cols=2, subplot_titles=("against trials", f"against {unit}"))
    text = [f"trial {p.number} ({p.state.lower()})" for p in history]
    volumes = [p.hypervolume for p in history]
    for col, x in ((1, [p.finished for p in history]), (2, compute)):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=volumes,
                mode="lines+markers",
                line={"shape": "hv", "color": PALETTE[0]},
                marker={"color": PALETTE[0]},
                text=text,
                hovertemplate="%{text}<br>%{x:.4g}: %{y:.4g}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(
        title_text="trials finished",
        dtick=whole_step(len(history)),
        tickformat="d",
        row=1,
        col=1,
    )
    fig.update_xaxes(title_text=unit, row=1, col=2)
    fig.update_xaxes(rangemode="tozero")
    fig.update_yaxes(title_text="hypervolume", rangemode="tozero")
    fig.update_layout(
        title=f"Hypervolume over trials (reference point: {reference_from(view)})",
        template="plotly_white",
    )
    return fig
