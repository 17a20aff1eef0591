"""What every figure shares: the plotly template, Wilson error bars, and saving as PNG + HTML."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

# simple_white, but with visible reference lines: its shape defaults draw lines 0 px wide, which
# hid every add_hline / add_vline (x*, targets, chosen steps) in the figures.
_template = go.layout.Template(pio.templates["simple_white"])
_template.layout.shapedefaults.update(line_width=1.5, opacity=0.7)
pio.templates["interp"] = _template
TEMPLATE = "interp"


def wilson_error_bars(
    rows: Sequence[dict[str, Any]], value: str, low: str, high: str
) -> dict[str, Any]:
    """Plotly `error_y` for rows holding a rate and its (Wilson) interval under the given keys."""
    return dict(
        type="data",
        symmetric=False,
        array=[r[high] - r[value] for r in rows],
        arrayminus=[r[value] - r[low] for r in rows],
    )


def save_figure(figure: go.Figure, path: str | os.PathLike | None) -> None:
    """Write `path` as PNG and the interactive HTML beside it; PNG export needs kaleido and a
    Chromium, so where they are missing only the HTML is written (and a line says why)."""
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(path.with_suffix(".html"), include_plotlyjs="cdn")
    try:
        figure.write_image(path, width=1000, height=figure.layout.height or 600, scale=2)
        print(f"wrote {path}")
    except Exception as error:
        print(f"(no PNG for {path.name}, only its HTML: {error})")
