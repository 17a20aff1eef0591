"""Figures of the number line: probe quality by layer, error rate against push, x*, projections."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from interp.figures.common import TEMPLATE, wilson_error_bars


def probe_quality_figure(result) -> go.Figure:
    """Held-out R^2 of the number probes by layer, one line per probed position."""
    fig = go.Figure()
    for position in result.config.positions:
        fig.add_trace(
            go.Scatter(
                x=result.layers, y=result.r2(position), mode="lines+markers", name=f"{position}"
            )
        )
    fig.update_layout(
        template=TEMPLATE,
        title=f"Linear number probes ({result.meta.get('model', '')}, target {result.config.target})",
        xaxis_title="layer",
        yaxis_title="held-out R²",
        yaxis_range=[min(0.0, _finite_min(result.tensors["r2"])), 1.0],
        legend_title="position",
    )
    return fig


def _error_rate_trace(rows: list[dict], name: str, **style) -> go.Scatter:
    """Error rate vs push strength from sweep table rows, with their Wilson intervals as error bars."""
    return go.Scatter(
        x=[r["strength"] for r in rows],
        y=[r["error_rate"] for r in rows],
        error_y=wilson_error_bars(rows, "error_rate", "error_low", "error_high"),
        mode="lines+markers",
        name=name,
        **style,
    )


def error_curve_figure(result) -> go.Figure:
    """Addition error rate vs push strength, one line per layer, with Wilson intervals."""
    fig = go.Figure()
    for layer in result.layers:
        rows = [r for r in result.tables["sweep"] if r["layer"] == layer]
        fig.add_trace(_error_rate_trace(rows, f"layer {layer} (x*={result.x_star(layer):.3g})"))
    fig.add_hline(y=result.config.threshold, line_dash="dot", annotation_text="threshold")
    fig.update_layout(
        template=TEMPLATE,
        title=f"{result.config.digits}-digit addition error under pushes along the number direction",
        xaxis_title="push strength x (probe units)",
        yaxis_title="error rate",
    )
    return fig


def _x_star_lines(x_star: float, top: float) -> go.Scatter:
    """Dashed lines at ±x* from 0 to `top`, as a trace (layout shapes do not reach the PNG export)."""
    return go.Scatter(
        x=[-x_star, -x_star, None, x_star, x_star],
        y=[0, top, None, 0, top],
        mode="lines",
        line=dict(dash="dash", color="black", width=1.5),
        name="±x* (error rate 5 in 1,000)",
    )


def projection_histogram_figure(result) -> go.Figure:
    """Histogram of the edit's per-token projections at each layer, with ±x* marked."""
    fig = go.Figure()
    for i, layer in enumerate(result.layers):
        fig.add_trace(
            go.Histogram(
                x=result.tensors["projections"][i].tolist(),
                name=f"layer {layer}",
                opacity=0.6,
                nbinsx=60,
            )
        )
    measured = [v for v in result.tensors["x_star"].tolist() if math.isfinite(v)]
    x_star = min(measured) if measured else float("nan")
    if math.isfinite(x_star):
        tallest = max(
            int(torch.histc(result.tensors["projections"][i].float(), bins=60).max())
            for i in range(len(result.layers))
        )
        fig.add_trace(_x_star_lines(x_star, tallest))
    fig.update_layout(
        template=TEMPLATE,
        barmode="overlay",
        title=f"Projection of the edit on the number direction {result.config.edit_description}",
        xaxis_title="projection (probe units)",
        yaxis_title="tokens",
    )
    return fig


def combined_figure(perturbation, projection, layer: int | None = None) -> go.Figure:
    """The research note's figure: error probability vs push strength, the edit's projections, x*."""
    layer = perturbation.layers[0] if layer is None else layer
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    rows = [
        r
        for r in perturbation.tables["sweep"]
        if r["layer"] == perturbation.layers[perturbation.nearest_layer_row(layer)]
    ]
    indices = (
        [projection.layers.index(layer)]
        if layer in projection.layers
        else range(len(projection.layers))
    )
    # bins sized to the whole x axis (pushes and projections), so narrow projections stay visible
    reach = max(
        [abs(r["strength"]) for r in rows]
        + [float(projection.tensors["projections"][i].abs().max()) for i in indices]
    )
    for index in indices:
        fig.add_trace(
            go.Histogram(
                x=projection.tensors["projections"][index].tolist(),
                name=f"edit projection, layer {projection.layers[index]}",
                opacity=0.6,
                xbins=dict(size=max(2 * reach / 150, 1e-6)),
            ),
            secondary_y=True,
        )
    fig.add_trace(
        _error_rate_trace(
            rows,
            f"error probability, push at layer {rows[0]['layer']}",
            line=dict(color="crimson", width=3),
        ),
        secondary_y=False,
    )
    x_star = perturbation.x_star(layer)
    low, high = perturbation.x_star_interval(layer)
    if math.isfinite(x_star):
        top = max([r["error_high"] for r in rows] + [0.0])
        fig.add_trace(_x_star_lines(x_star, top), secondary_y=False)
        fig.add_annotation(
            x=x_star,
            y=1.0,
            yref="paper",
            showarrow=False,
            xanchor="left",
            text=f" x* = {x_star:.3g} [{low:.3g}, {high:.3g}]",
        )
    fig.update_layout(
        template=TEMPLATE,
        barmode="overlay",
        title=f"Number-direction pushes vs where an edit lands ({perturbation.meta.get('model', '')})",
        xaxis_title="strength along the number direction (probe units)",
        legend=dict(orientation="h", y=-0.2),
    )
    fig.update_yaxes(title_text="addition error probability", secondary_y=False)
    fig.update_yaxes(title_text="tokens (edit projections)", secondary_y=True, rangemode="tozero")
    return fig


def _finite_min(tensor) -> float:
    values = [v for v in tensor.flatten().tolist() if math.isfinite(v)]
    return min(values) if values else 0.0
