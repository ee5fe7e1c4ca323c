"""Render a local HTML page in headless Chromium: the DOM after its scripts ran, a summary of
the plotly figures it drew (traces by kind, titles), or a screenshot."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# CI installs chromium (.ci/run): there a missing browser fails the test instead of skipping it.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="chromium is not installed"
)

# Appended to a copy of the page: once plotly has drawn, a <pre id="dse-summary"> holds each
# graph's layout title, subplot titles and traces (type, mode, line shape, error bars, points),
# the page's size, and how many graphs plotly drew an SVG for.
SUMMARY_SCRIPT = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const bars = e => !!(e && e.visible !== false && (e.array || []).length);
  const graphs = [...document.querySelectorAll(".js-plotly-plot")].map(gd => ({
    id: gd.id,
    title: ((gd.layout.title || {}).text) || "",
    subtitles: (gd.layout.annotations || []).map(a => a.text),
    drawn: gd.querySelectorAll(".main-svg").length > 0,
    traces: gd.data.map(t => ({
      type: t.type || "scatter",
      mode: t.mode || null,
      shape: (t.line || {}).shape || null,
      name: t.name || "",
      error_x: bars(t.error_x),
      error_y: bars(t.error_y),
      colorscale: !!(t.marker && t.marker.colorscale),
      points: (t.x || []).length,
    })),
  }));
  const out = document.createElement("pre");
  out.id = "dse-summary";
  out.textContent = JSON.stringify({
    width: document.documentElement.clientWidth,
    height: document.documentElement.scrollHeight,
    graphs,
  });
  document.body.appendChild(out);
}, 500));
</script>"""


def _run(page: Path, profile_dir: Path, *extra: str) -> str:
    assert CHROMIUM is not None, "CI must install chromium (see .ci/run)"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile_dir}",
        "--virtual-time-budget=10000",
        *extra,
    ]
    return subprocess.run(
        [CHROMIUM, *flags, page.resolve().as_uri()], capture_output=True, text=True, timeout=120
    ).stdout


def rendered_dom(page: Path, profile_dir: Path, width: int | None = None) -> str:
    size = [f"--window-size={width},1000"] if width else []
    return _run(page, profile_dir, *size, "--dump-dom")


def rendered_figures(page: Path, work_dir: Path, width: int = 1400) -> dict[str, Any]:
    """The page's plotly figures as Chromium drew them at `width` px: {"width", "height" (of
    the whole page), "graphs": [{"id", "title", "subtitles", "drawn", "traces": [{"type",
    "mode", "shape", "name", "error_x", "error_y", "colorscale", "points"}]}]}."""
    work_dir.mkdir(parents=True, exist_ok=True)
    probe = work_dir / f"{page.stem}-probe.html"
    text = page.read_text(encoding="utf-8")
    probe.write_text(text.replace("</body>", SUMMARY_SCRIPT + "</body>"), encoding="utf-8")
    dom = rendered_dom(probe, work_dir / "profile", width)
    found = re.search(r'<pre id="dse-summary">(.*?)</pre>', dom, re.S)
    assert found, f"no figure summary in the rendered page (DOM of {len(dom)} characters)"
    return json.loads(html.unescape(found.group(1)))


def screenshot(
    page: Path, png: Path, work_dir: Path, width: int = 1400, height: int | None = None
) -> Path:
    """A PNG of the page at `width` x `height` px; by default the whole page (its height
    measured by a first rendering, or given from rendered_figures)."""
    height = height or rendered_figures(page, work_dir, width)["height"]
    _run(
        page,
        work_dir / "profile",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
        f"--screenshot={png}",
    )
    assert png.is_file(), f"chromium wrote no screenshot to {png}"
    return png
