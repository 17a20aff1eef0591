"""Figures of the number-faithfulness analysis (plotly), built from its results' data.

Colour convention for differences: red where faithfulness rises (edited - base > 0), blue where it
falls; for token traces, red where the probe reads the text so far as faithful.
"""

from __future__ import annotations

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from interp.figures.common import TEMPLATE

LAYER_METRICS = ("accuracy", "auc", "pair_accuracy")


RED_UP = "RdBu_r"  # diverging: red for positive values (faithfulness rises), blue for negative


def faithfulness_layers_figure(result) -> go.Figure:
    """Held-out probe accuracy, AUC and pair accuracy by layer (+ per-head accuracy when probed)."""
    heads = result.has_heads
    fig = make_subplots(
        rows=1,
        cols=2 if heads else 1,
        column_widths=[0.55, 0.45] if heads else None,
        subplot_titles=["probe per layer (held out by question)"]
        + (["probe per head: held-out accuracy"] if heads else []),
    )
    layers = result.layers
    for metric, name in (
        ("accuracy", "accuracy"),
        ("auc", "AUC"),
        ("pair_accuracy", "pair accuracy"),
        ("transfer_accuracy", "base probe on these states"),
    ):
        if metric in result.tensors:
            fig.add_trace(
                go.Scatter(
                    x=layers, y=result.tensors[metric].tolist(), mode="lines+markers", name=name
                ),
                row=1,
                col=1,
            )
    fig.add_hline(
        y=result.likelihood_accuracy(),
        line_dash="dash",
        line_color="black",
        annotation_text=f"likelihood score {result.likelihood_accuracy():.3f}",
        row=1,
        col=1,
    )
    fig.add_hline(y=0.5, line_dash="dot", line_color="grey", row=1, col=1)
    if heads:
        accuracy = result.tensors["head_accuracy"]
        fig.add_trace(
            go.Heatmap(
                z=accuracy.T.tolist(),
                x=layers,
                y=list(range(accuracy.shape[1])),
                colorscale="Viridis",
                colorbar=dict(title="accuracy", x=1.02),
                name="head accuracy",
            ),
            row=1,
            col=2,
        )
        fig.update_xaxes(title_text="layer", row=1, col=2)
        fig.update_yaxes(title_text="head", row=1, col=2)
    fig.update_xaxes(title_text="layer", row=1, col=1)
    fig.update_yaxes(title_text="held-out score", range=[0.4, 1.02], row=1, col=1)
    fig.update_layout(
        template=TEMPLATE,
        title=f"Number faithfulness: {result.meta.get('model', '')}, arm {result.config.arm} "
        f"({result.meta.get('n_triples')} triples)",
        legend=dict(orientation="h", x=0.0, y=-0.18),
    )
    return fig


def faithfulness_difference_figure(comparison) -> go.Figure:
    """Edited minus base as heatmaps: red where faithfulness rises, blue where it falls."""
    heads = "delta_head_accuracy" in comparison.tensors
    layers = comparison.layers
    fig = make_subplots(
        rows=2 if heads else 1,
        cols=1,
        row_heights=[0.3, 0.7] if heads else None,
        vertical_spacing=0.16,
        subplot_titles=["probe per layer"] + (["probe per head: accuracy"] if heads else []),
    )
    deltas = torch.stack([comparison.tensors[f"delta_{m}"] for m in LAYER_METRICS])
    names = ["accuracy", "AUC", "pair accuracy"]
    limit = float(deltas.abs().max())
    if heads:
        limit = max(limit, float(comparison.tensors["delta_head_accuracy"].abs().max()))
    limit = max(limit, 1e-3)
    fig.add_trace(
        go.Heatmap(
            z=deltas.tolist(),
            x=layers,
            y=names,
            zmin=-limit,
            zmax=limit,
            colorscale=RED_UP,
            text=[[f"{v:+.2f}" for v in row] for row in deltas.tolist()],
            texttemplate="%{text}",
            textfont=dict(size=9),
            colorbar=dict(title="edited − base"),
        ),
        row=1,
        col=1,
    )
    if heads:
        head = comparison.tensors["delta_head_accuracy"]
        fig.add_trace(
            go.Heatmap(
                z=head.T.tolist(),
                x=layers,
                y=list(range(head.shape[1])),
                zmin=-limit,
                zmax=limit,
                colorscale=RED_UP,
                showscale=False,
            ),
            row=2,
            col=1,
        )
        fig.update_yaxes(title_text="head", row=2, col=1)
    fig.update_xaxes(title_text="layer", row=2 if heads else 1, col=1)
    meta = comparison.meta
    fig.update_layout(
        template=TEMPLATE,
        title=f"Faithfulness, {comparison.config.edited} − {comparison.config.base} "
        f"({meta.get('model', '')})<br><sup>likelihood score {meta['base_likelihood_accuracy']:.3f} → "
        f"{meta['edited_likelihood_accuracy']:.3f}; log-likelihood margin "
        f"{meta.get('base_likelihood_margin', float('nan')):.2f} → "
        f"{meta.get('edited_likelihood_margin', float('nan')):.2f} nats</sup>",
    )
    return fig


def token_trace_figure(trace) -> go.Figure:
    """P(faithful) from the probe at each answer token, one row per answer (red: faithful)."""
    rows = trace.tables["traces"]
    width = max(len(r["tokens"]) for r in rows)
    z = [r["p_faithful"] + [None] * (width - len(r["p_faithful"])) for r in rows]
    text = [
        [t.replace("\n", "⏎") for t in r["tokens"]] + [""] * (width - len(r["tokens"]))
        for r in rows
    ]
    labels = [f"{r['id'].split('/')[-1]} {r['kind']}" for r in rows]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(width)),
            y=labels,
            zmin=0,
            zmax=1,
            colorscale=RED_UP,
            text=text,
            texttemplate="%{text}",
            textfont=dict(size=8),
            colorbar=dict(title="P(faithful)"),
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        template=TEMPLATE,
        title=f"Probe at layer {trace.config.layer} along answers, arm {trace.config.arm} "
        f"({trace.meta.get('model', '')})",
        xaxis_title="answer token",
    )
    return fig
