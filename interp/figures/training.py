"""Figures of training runs: loss and bias norm per step, and the bias-control trajectories."""

from __future__ import annotations

from collections.abc import Mapping

import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.figures.common import TEMPLATE


def training_figure(result) -> go.Figure:
    """Loss (left) and mean RED bias norm (right) per optimizer step of one run."""
    history = result.history
    steps = [r["step"] for r in history]
    has_bias = any("bias_norm" in r for r in history)
    fig = make_subplots(rows=1, cols=2 if has_bias else 1, subplot_titles=("loss", "bias norm"))
    fig.add_trace(go.Scatter(x=steps, y=[r["loss"] for r in history], name="loss"), 1, 1)
    if has_bias:
        fig.add_trace(
            go.Scatter(x=steps, y=[r.get("bias_norm") for r in history], name="mean bias norm"),
            1,
            2,
        )
        control = result.config.bias_control
        if control is not None:
            fig.add_hline(y=control.target, line_dash="dot", row=1, col=2)
    fig.update_layout(
        template=TEMPLATE, title=f"Training ({result.meta.get('model', '')})", showlegend=False
    )
    fig.update_xaxes(title_text="optimizer step")
    return fig


def bias_control_figure(runs: Mapping[str, object], target: float | None = None) -> go.Figure:
    """Mean RED bias norm per step for several runs (e.g. no control, reference PID, penalty PID),
    with each controlled run's weight on a log axis below."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.65, 0.35],
        vertical_spacing=0.08,
        subplot_titles=("mean L2 norm of the RED biases", "controller weight"),
    )
    palette = plotly.colors.qualitative.Plotly
    for index, (name, result) in enumerate(runs.items()):
        colour = palette[index % len(palette)]
        history = result.history
        steps = [r["step"] for r in history]
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=[r["bias_norm"] for r in history],
                name=name,
                mode="lines",
                line=dict(color=colour),
                legendgroup=name,
            ),
            1,
            1,
        )
        if any("control_weight" in r for r in history):
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=[r["control_weight"] for r in history],
                    name=f"{name}: weight",
                    mode="lines",
                    line=dict(dash="dot", color=colour),
                    legendgroup=name,
                    showlegend=False,
                ),
                2,
                1,
            )
        if target is None and result.config.bias_control is not None:
            target = result.config.bias_control.target
    if target is not None:
        fig.add_hline(
            y=target, line_dash="dash", annotation_text=f"target {target:g}", row=1, col=1
        )
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_xaxes(title_text="optimizer step", row=2, col=1)
    fig.update_layout(
        template=TEMPLATE,
        title="Bias-norm control under AdamW (dotted: the controller's weight)",
        legend=dict(orientation="h", x=0.0, y=-0.18),
    )
    return fig
