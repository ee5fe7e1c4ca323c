"""Writing pages: one figure as a standalone HTML page (plotly.js embedded, so it opens
offline), and any page written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import plotly.graph_objects as go


def publish(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file beside it, renamed over it: a write cut
    short (a full disk, Ctrl-C) leaves the previous page whole, not half of a new one."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_page(fig: go.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return publish(path, fig.to_html(include_plotlyjs=True, full_html=True))
