"""One figure as a standalone HTML page, plotly.js embedded so it opens offline."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go


def write_page(fig: go.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs=True, full_html=True)
    return path
