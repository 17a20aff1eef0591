"""Figures of the SEAL study (SEAL, arXiv 2504.07986): thoughts by class, thought states, steering.

Each takes the result of its analysis (`interp.analyses.thought_stats`, `thought_states`,
`steering`) and is what that result's `figure()` returns.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from interp.figures.common import TEMPLATE, wilson_error_bars
from interp.text.thoughts import CLASSES

if TYPE_CHECKING:
    from interp.analyses.steering import SteeringResult
    from interp.analyses.thought_states import ThoughtStatesResult
    from interp.analyses.thought_stats import ThoughtStatsResult

CLASS_COLOURS = {"execution": "#4c78a8", "reflection": "#e45756", "transition": "#f58518"}


def thought_stats_figure(result: ThoughtStatsResult) -> go.Figure:
    """Thoughts and tokens per response by class, split by correctness (top) and difficulty (bottom)."""
    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=(
            "thoughts per response, by answer",
            "tokens per response, by answer",
            "thoughts per response, by difficulty",
            "tokens per response, by difficulty",
        ),
        vertical_spacing=0.14,
    )
    for row, table in ((1, "by_correct"), (2, "by_level")):
        rows = [r for r in result.tables[table] if r["group"] != "all"]
        groups = sorted({r["group"] for r in rows})
        for name in CLASSES:
            own = {r["group"]: r for r in rows if r["class"] == name}
            labels = [f"{g} (n={own[g]['responses']})" for g in groups]
            for col, metric in ((1, "thoughts_per_response"), (2, "tokens_per_response")):
                fig.add_trace(
                    go.Bar(
                        x=labels,
                        y=[own[g][metric] for g in groups],
                        name=name,
                        marker_color=CLASS_COLOURS[name],
                        legendgroup=name,
                        showlegend=row == 1 and col == 1,
                    ),
                    row=row,
                    col=col,
                )
    fig.update_layout(
        template=TEMPLATE,
        barmode="stack",
        title=(
            f"Thoughts by class ({result.meta.get('model', '')}, span: {result.config.span}, "
            f"{result.meta.get('n_responses', 0)} responses)"
        ),
        legend_title="class",
    )
    return fig


def thought_states_figure(result: ThoughtStatesResult) -> go.Figure:
    """Separability by layer (top) and a t-SNE map per chosen layer, coloured by class."""
    tsne_layers = [int(x) for x in result.tensors["tsne_layers"]]
    cols = min(3, max(1, len(tsne_layers)))
    tsne_rows = math.ceil(len(tsne_layers) / cols)
    specs = [[{"colspan": cols}] + [None] * (cols - 1)] + [[{}] * cols for _ in range(tsne_rows)]
    titles = ["cross-validated accuracy of the thought class by layer"] + [
        f"t-SNE, layer {layer}" for layer in tsne_layers
    ]
    fig = make_subplots(
        rows=1 + tsne_rows, cols=cols, specs=specs, subplot_titles=titles, vertical_spacing=0.14
    )
    table = result.tables["per_layer"]
    x = [r["layer"] for r in table]
    for key, name, dash in (
        ("majority_baseline", "majority-class accuracy", "dashdot"),
        ("accuracy", "3 classes, accuracy", "dot"),
        ("balanced_accuracy", "3 classes, balanced accuracy", "solid"),
        ("binary_balanced_accuracy", "execution vs rest, balanced accuracy", "dash"),
    ):
        fig.add_trace(
            go.Scatter(x=x, y=[r[key] for r in table], name=name, line_dash=dash),
            row=1,
            col=1,
        )
    labels = result.tensors["point_labels"].tolist()
    for i in range(len(tsne_layers)):
        coords = result.tensors["tsne"][i]
        row, col = 2 + i // cols, 1 + i % cols
        for c, name in enumerate(CLASSES):
            mask = [label == c for label in labels]
            pts = coords[torch.tensor(mask, dtype=torch.bool)] if any(mask) else coords[:0]
            fig.add_trace(
                go.Scattergl(
                    x=pts[:, 0].tolist(),
                    y=pts[:, 1].tolist(),
                    mode="markers",
                    marker=dict(size=4, color=CLASS_COLOURS[name], opacity=0.7),
                    name=f"{name} (n={result.counts[name]})",
                    legendgroup=name,
                    showlegend=i == 0,
                ),
                row=row,
                col=col,
            )
        fig.update_xaxes(showticklabels=False, row=row, col=col)
        fig.update_yaxes(showticklabels=False, row=row, col=col)
    fig.update_layout(
        template=TEMPLATE,
        title=(
            f"Thought states at boundaries ({result.meta.get('model', '')}, span: "
            f"{result.config.span}, {result.meta.get('n_boundaries', 0)} boundaries)"
        ),
        height=350 + 300 * tsne_rows,
    )
    fig.update_yaxes(range=[0, 1.02], title_text="accuracy", row=1, col=1)
    fig.update_xaxes(tickmode="array", tickvals=x, row=1, col=1)  # the subplot title names the axis
    return fig


STEERING_ROWS = (
    ("accuracy", "accuracy"),
    ("mean_tokens", "mean tokens"),
    ("reflection_per_response", "reflections per answer"),
)


def steering_figure(result: SteeringResult) -> go.Figure:
    """Accuracy (with 95% intervals), mean tokens and reflections per answer, vs alpha at the
    main layer and vs layer at the main alpha; base and logits penalty as horizontal references.
    On the organism's problems the reflections are also split into needed and redundant."""
    c = result.config
    rows = result.tables["arms"]
    base = next(r for r in rows if r["kind"] == "base")
    penalty = next(r for r in rows if r["kind"] == "penalty")
    first = c.variants[0]
    steered = [r for r in rows if r["kind"] == "steered" and r["variant"] == first]
    titles = []
    for _, label in STEERING_ROWS:
        titles += [
            f"{label} vs alpha (layer {c.main_layer})",
            f"{label} vs layer (alpha {c.main_alpha:g})",
        ]
    fig = make_subplots(
        rows=len(STEERING_ROWS), cols=2, subplot_titles=titles, vertical_spacing=0.1
    )
    organism = "needed_reflections_per_response" in base
    lines: dict[int, list[dict]] = {}
    for r in steered:
        lines.setdefault(r["layer"], []).append(r)
    vs_alpha_layers = sorted(lines) if c.grid == "full" else [c.main_layer]
    palette = ["#4c78a8", "#54a24b", "#b279a2", "#9d755d", "#eeca3b", "#72b7b2"]
    for i, layer in enumerate(vs_alpha_layers):
        points = sorted(
            [{**base, "alpha": 0.0}] + [r for r in lines.get(layer, [])], key=lambda r: r["alpha"]
        )
        for plot_row, (key, _) in enumerate(STEERING_ROWS, start=1):
            trace = _trace(points, "alpha", key, f"steered, layer {layer}", palette[i % 6])
            fig.add_trace(trace, row=plot_row, col=1)
    by_layer = sorted([r for r in steered if r["alpha"] == c.main_alpha], key=lambda r: r["layer"])
    main_points = sorted(
        [{**base, "alpha": 0.0}] + lines.get(c.main_layer, []), key=lambda r: r["alpha"]
    )
    if organism:  # needed and redundant reflections, dashed and dotted in the reflections row
        for key, dash in (
            ("needed_reflections_per_response", "dash"),
            ("redundant_reflections_per_response", "dot"),
        ):
            name = key.split("_")[0]
            for col, points, x in ((1, main_points, "alpha"), (2, by_layer, "layer")):
                fig.add_trace(
                    go.Scatter(
                        x=[p[x] for p in points],
                        y=[p[key] for p in points],
                        mode="lines+markers",
                        name=f"{name} reflections",
                        line={"dash": dash, "color": "#7f7f7f"},
                        legendgroup=name,
                        showlegend=col == 1,
                    ),
                    row=len(STEERING_ROWS),
                    col=col,
                )
    for plot_row, (key, _) in enumerate(STEERING_ROWS, start=1):
        trace = _trace(by_layer, "layer", key, f"steered, alpha {c.main_alpha:g}", "#e45756")
        fig.add_trace(trace, row=plot_row, col=2)
        for reference, dash, where in ((base, "dot", "top left"), (penalty, "dash", "bottom left")):
            for col in (1, 2):
                fig.add_hline(
                    y=reference[key],
                    line_dash=dash,
                    line_color="grey",
                    annotation_text=reference["arm"],
                    annotation_position=where,
                    annotation_font_color="grey",
                    row=plot_row,
                    col=col,
                )
    fig.update_xaxes(title_text="alpha", col=1, row=len(STEERING_ROWS))
    fig.update_xaxes(title_text="layer", col=2, row=len(STEERING_ROWS))
    fig.update_xaxes(tickmode="array", tickvals=sorted({r["layer"] for r in steered}), col=2)
    fig.update_yaxes(range=[0, 1], row=1)
    fig.update_layout(
        template=TEMPLATE,
        height=900,
        title=(
            f"SEAL steering ({result.meta.get('model', '')}, {result.meta.get('n_problems', 0)} "
            f"problems, span: {c.span}); dotted: base, dashed: logits penalty {c.penalty_value:g}"
        ),
    )
    return fig


def _trace(points: list[dict], x: str, y: str, name: str, colour: str) -> go.Scatter:
    """Steered arms as a line; accuracy with its 95% Wilson interval."""
    error_y = None
    if y == "accuracy":
        error_y = wilson_error_bars(points, "accuracy", "accuracy_low", "accuracy_high")
    return go.Scatter(
        x=[p[x] for p in points],
        y=[p[y] for p in points],
        error_y=error_y,
        mode="lines+markers",
        name=name,
        line_color=colour,
        legendgroup=name,
        showlegend=y == "accuracy",
    )
