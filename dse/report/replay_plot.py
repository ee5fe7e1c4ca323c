"""The replay's figure: each method's share of the grid's hypervolume against its share of the
grid's training seconds, the mean over seeds as a line and its 95% interval as a band."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from dse.report.pages import write_page
from dse.search.replay_summary import MethodSummary

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def replay_figure(summaries: list[MethodSummary], title: str) -> go.Figure:
    fig = go.Figure()
    for i, summary in enumerate(summaries):
        color = COLORS[i % len(COLORS)]
        x = [share for share, _ in summary.curve]
        low = [e.low for _, e in summary.curve]
        high = [e.high for _, e in summary.curve]
        fig.add_trace(
            go.Scatter(
                x=x + x[::-1],
                y=high + low[::-1],
                fill="toself",
                fillcolor=color,
                opacity=0.2,
                line={"width": 0},
                hoverinfo="skip",
                legendgroup=summary.method,
                showlegend=False,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[e.mean for _, e in summary.curve],
                mode="lines",
                line={"color": color, "shape": "hv"},
                name=f"{summary.method} ({summary.seeds} seed{'' if summary.seeds == 1 else 's'})",
                legendgroup=summary.method,
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title="share of the grid's training seconds",
        yaxis_title="share of the grid's hypervolume",
        xaxis={"range": [0, 1]},
        yaxis={"range": [0, 1.02]},
        template="plotly_white",
    )
    return fig


def write_replay_plot(summaries: list[MethodSummary], title: str, path: Path) -> Path:
    return write_page(replay_figure(summaries, title), path)
