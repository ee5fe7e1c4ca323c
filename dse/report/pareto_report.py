"""The Pareto report: an interactive HTML page (plotly) and, when a browser is present, a PNG.

All trials with the front highlighted (hover shows each configuration), a 3-D view for three
objectives, the hypervolume against trials finished and against training compute. plotly.js
is embedded, so the page opens offline.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState

from dse.search.records import TrialRecord
from dse.search.results import (
    StudyView,
    hypervolume_history,
    objective_values,
    ran_on_gpu,
    reference_from,
    robustness,
)


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    png: Path | None
    png_skipped: str | None  # why there is no PNG


def _hover(view: StudyView, trial: FrozenTrial, chance: dict[int, float] | None = None) -> str:
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
    lines += [f"{k}: {v}" for k, v in trial.params.items()]
    if record.device:
        lines.append(f"device: {record.device}")
    return "<br>".join(lines)


def pareto_figure(view: StudyView) -> go.Figure:
    """Objective 1 against objective 2: every complete trial, the front as a line on top."""
    names = view.metric_names
    complete = [t for t in view.trials() if t.state == TrialState.COMPLETE]
    front = view.front()
    front_numbers = {t.number for t in front}
    feasible = [t for t in complete if all(v <= 0 for v in t.constraints.values())]
    others = [t for t in feasible if t.number not in front_numbers]
    infeasible = [t for t in complete if t not in feasible]
    chance = robustness(view)
    fig = go.Figure()
    for label, trials, style in (
        ("trials", others, {"color": "#9aa5b1", "size": 8}),
        ("infeasible", infeasible, {"color": "#e0b4b4", "size": 8, "symbol": "x"}),
        ("Pareto front", front, {"color": "#d62728", "size": 11}),
    ):
        fig.add_trace(
            go.Scatter(
                x=[t.values[0] for t in trials],
                y=[t.values[1] for t in trials],
                mode="markers+lines" if label == "Pareto front" else "markers",
                line={"shape": "hv", "color": "#d62728"} if label == "Pareto front" else None,
                marker=style,
                name=label,
                text=[_hover(view, t, chance) for t in trials],
                hovertemplate="%{text}<extra></extra>",
                error_x=_error_bars(trials, names[0]),
                error_y=_error_bars(trials, names[1]),
            )
        )
    fig.update_layout(
        title=f"{view.study.study_name}: {names[0]} vs {names[1]}",
        xaxis_title=f"{names[0]} ({view.directions[0]})",
        yaxis_title=f"{names[1]} ({view.directions[1]})",
        template="plotly_white",
    )
    return fig


def _error_bars(trials: list[FrozenTrial], metric: str) -> dict | None:
    """One std over the seeds (trials with repeats); None when no trial has repeats."""
    std = [TrialRecord(t).seed_std.get(metric) for t in trials]
    if all(s is None for s in std):
        return None
    return {"type": "data", "array": [s or 0.0 for s in std], "visible": True}


def pareto_figure_3d(view: StudyView) -> go.Figure:
    names = view.metric_names
    complete = [t for t in view.trials() if t.state == TrialState.COMPLETE]
    front_numbers = {t.number for t in view.front()}
    fig = go.Figure()
    for label, trials, color in (
        ("trials", [t for t in complete if t.number not in front_numbers], "#9aa5b1"),
        ("Pareto front", [t for t in complete if t.number in front_numbers], "#d62728"),
    ):
        fig.add_trace(
            go.Scatter3d(
                x=[t.values[0] for t in trials],
                y=[t.values[1] for t in trials],
                z=[t.values[2] for t in trials],
                mode="markers",
                name=label,
                marker={"color": color, "size": 5},
                text=[_hover(view, t) for t in trials],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"{view.study.study_name}: three objectives",
        scene={"xaxis_title": names[0], "yaxis_title": names[1], "zaxis_title": names[2]},
        template="plotly_white",
    )
    return fig


def hypervolume_figure(view: StudyView) -> go.Figure:
    """Hypervolume after each finished trial: against trials, and against training compute."""
    from plotly.subplots import make_subplots

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
                line={"shape": "hv"},
                text=text,
                hovertemplate="%{text}<br>%{x:.4g}: %{y:.4g}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(title_text="trials finished", row=1, col=1)
    fig.update_xaxes(title_text=unit, row=1, col=2)
    fig.update_yaxes(title_text="hypervolume", row=1, col=1)
    fig.update_layout(
        title=f"Hypervolume over trials (reference point: {reference_from(view)})",
        template="plotly_white",
    )
    return fig


def _front_table(view: StudyView) -> str:
    chance = robustness(view)
    columns = ["trial", *view.metric_names, *(["P(non-dominated)"] if chance else []), "params"]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in columns)
    rows = []
    for t in view.front():
        values = "".join(f"<td>{v:.4g}</td>" for v in t.values)
        if chance:
            values += f"<td>{chance[t.number]:.2f}</td>"
        params = html.escape(", ".join(f"{k}={v}" for k, v in t.params.items()))
        rows.append(f"<tr><td>{t.number}</td>{values}<td>{params}</td></tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def write_report(view: StudyView, out_dir: Path, png: bool = True) -> ReportFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = [pareto_figure(view)]
    if len(view.metric_names) == 3:
        figures.append(pareto_figure_3d(view))
    figures.append(hypervolume_figure(view))
    parts = [
        fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=f"figure-{i}")
        for i, fig in enumerate(figures)
    ]
    name = view.study.study_name
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>dse: {html.escape(name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"
        "</style></head><body>"
        f"<h1>Study {html.escape(name)}</h1>"
        f"<p>{len(view.trials())} trials, {len(view.front())} on the Pareto front.</p>"
        f"{_front_table(view)}{''.join(parts)}</body></html>"
    )
    html_path = out_dir / f"{name}-pareto.html"
    html_path.write_text(page, encoding="utf-8")
    if not png:
        return ReportFiles(html_path, None, "not asked for")
    png_path = out_dir / f"{name}-pareto.png"
    reason = _write_png(figures[0], png_path)
    return ReportFiles(html_path, None if reason else png_path, reason)


def _write_png(fig: go.Figure, path: Path) -> str | None:
    """Write a PNG with kaleido; the reason it could not, or None."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return "kaleido is not installed (pip install kaleido)"
    try:
        fig.write_image(path, width=1000, height=650)
    except Exception as exc:  # no browser for kaleido, or it failed to start
        return f"kaleido could not render ({' '.join(str(exc).split())[:160]})"
    return None
