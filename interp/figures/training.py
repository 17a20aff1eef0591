"""Figures of training runs: loss and bias norm per step, the bias-control trajectories, and the
accuracy and length of each arm of the training comparison (`interp.analyses.reft_compare`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.figures.common import TEMPLATE, wilson_error_bars

if TYPE_CHECKING:
    from interp.analyses.reft_compare import ReftCompareResult

# how the prefix arms of the training comparison are named in the trajectories figure
PREFIX_ARM_LABELS = {
    "red_prefix": "no control",
    "red_prefix_pid_reference": "PID, BREP's form (weight scales the CE)",
    "red_prefix_pid": "PID, penalty form (weight of a hinge norm penalty)",
}


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
    """Mean RED bias norm per step for several runs (e.g. no control, BREP's PID form, penalty PID),
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


def bias_trajectories_figure(out: str | os.PathLike = "runs/reft_compare") -> go.Figure:
    """The bias-norm trajectories of the prefix arms that `reft_compare.run` trained under `out`
    (no control, the PID form of BREP's code, the penalty PID)."""
    from interp.storage import is_saved
    from interp.training.trainer import TrainResult

    out = Path(out)
    runs = {}
    for arm, label in PREFIX_ARM_LABELS.items():
        path = out / "train" / arm / "history"
        if is_saved(path):
            runs[label] = TrainResult.load(path)
    if not runs:
        raise FileNotFoundError(f"no training histories under {out / 'train'}; run the arms first")
    return bias_control_figure(runs)


def reft_compare_figure(result: ReftCompareResult) -> go.Figure:
    """Accuracy (95% Wilson interval) and mean tokens per arm of the training comparison."""
    rows = result.rows
    names = [r["arm"] for r in rows]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy (95% CI)", "mean tokens"))
    fig.add_trace(
        go.Bar(
            x=names,
            y=[r["accuracy"] for r in rows],
            error_y=wilson_error_bars(rows, "accuracy", "accuracy_low", "accuracy_high"),
            showlegend=False,
        ),
        1,
        1,
    )
    fig.add_trace(go.Bar(x=names, y=[r["mean_tokens"] for r in rows], showlegend=False), 1, 2)
    fig.update_layout(
        template=TEMPLATE,
        title=(
            f"GSM8K {result.config.eval_split}, {result.config.n_eval} problems "
            f"({result.meta.get('model', '')})"
        ),
    )
    fig.update_yaxes(range=[0, 1], row=1, col=1)
    return fig
