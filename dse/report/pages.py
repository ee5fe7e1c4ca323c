"""Writing pages: one figure as a standalone HTML page (plotly.js embedded, so it opens
offline), written whole or not at all (dse.files)."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from dse.files import publish


def write_page(fig: go.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return publish(path, fig.to_html(include_plotlyjs=True, full_html=True))
