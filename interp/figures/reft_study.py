"""Figures of the ReFT study (`interp.analyses.reft_study`), each drawn from a saved phase result
alone: the budget, x*, loss and bias-norm curves, GSM8K accuracy beside the research note's
anchors, paired differences, KL-budget stops, projections vs x*, RED-all against base on
the swap's growing pool, the prefix swap, faithfulness."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.figures.common import TEMPLATE, wilson_error_bars

PALETTE = plotly.colors.qualitative.Plotly


def budget_figure(plan) -> go.Figure:
    """Estimated hours per phase (stacked by item) from the plan's measured timing."""
    fig = go.Figure()
    for row in plan.tables["budget"]:
        fig.add_trace(go.Bar(x=[row["phase"]], y=[row["hours"]], name=row["what"]))
    fig.update_layout(
        template=TEMPLATE,
        barmode="stack",
        title=f"Planned budget ({plan.meta['plan']['dtype']}): estimated hours per phase",
        yaxis_title="hours",
        showlegend=False,
    )
    return fig


def x_star_figure(number) -> go.Figure:
    """Error rate against the push along the sum direction, with x* marked, per swept layer."""
    fig = go.Figure()
    for index, row in enumerate(number.tables["x_star"]):
        rows = [r for r in number.tables["sweep"] if r["layer"] == row["layer"]]
        colour = PALETTE[index % len(PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=[r["strength"] for r in rows],
                y=[r["error_rate"] for r in rows],
                error_y=wilson_error_bars(rows, "error_rate", "error_low", "error_high"),
                name=f"layer {row['layer']}",
                line=dict(color=colour),
            )
        )
        if math.isfinite(row["x_star"]):
            for sign in (-1, 1):
                fig.add_vline(x=sign * row["x_star"], line_dash="dash", line_color=colour)
    fig.update_layout(
        template=TEMPLATE,
        title="Pushes along the sum direction: error rate and ±x*",
        xaxis_title="push (probe units)",
        yaxis_title="error rate (95% CI)",
    )
    return fig


def trailing_mean(values: Sequence[float], window: int) -> list[float]:
    """The mean of each value and the `window - 1` before it (fewer at the start)."""
    return [
        sum(values[max(0, i + 1 - window) : i + 1]) / (i + 1 - max(0, i + 1 - window))
        for i in range(len(values))
    ]


def loss_curves_figure(training, window: int = 8) -> go.Figure:
    """Training loss of every arm (trailing mean over `window` steps; batches of 4 make the raw
    loss too noisy to compare arms) and of the pilot, with the chosen step count; and the mean
    RED bias norm with its target. Prefix arms' loss is on their first K answer tokens only."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(f"training loss (mean of {window} steps)", "mean RED bias norm"),
    )
    arms = list(dict.fromkeys(r["arm"] for r in training.tables["curves"]))
    for index, arm in enumerate(arms):
        rows = [r for r in training.tables["curves"] if r["arm"] == arm]
        colour = PALETTE[index % len(PALETTE)]
        steps = [r["step"] for r in rows]
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=trailing_mean([r["loss"] for r in rows], window),
                name=arm,
                line=dict(color=colour),
            ),
            1,
            1,
        )
        if any(r.get("bias_norm") is not None for r in rows):
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=[r.get("bias_norm") for r in rows],
                    name=arm,
                    line=dict(color=colour),
                    showlegend=False,
                ),
                1,
                2,
            )
    pilot = training.tables.get("pilot") or []
    if pilot:
        fig.add_trace(
            go.Scatter(
                x=[r["step"] for r in pilot],
                y=[r["smoothed"] for r in pilot],
                name="pilot (red_all), smoothed",
                line=dict(color="black", dash="dot"),
            ),
            1,
            1,
        )
        fig.add_vline(
            x=training.meta["steps"],
            line_dash="dash",
            line_color="grey",
            annotation_text=f"{training.meta['steps']} steps",
            row=1,
            col=1,
        )
    fig.add_hline(
        y=training.meta["bias_target"], line_dash="dot", annotation_text="PID target", row=1, col=2
    )
    fig.update_xaxes(title_text="optimizer step")
    fig.update_layout(
        template=TEMPLATE,
        title=f"Training: {training.meta['steps']} steps per arm, read off the pilot's loss curve",
    )
    return fig


def accuracy_figure(evaluation) -> go.Figure:
    return accuracy_figure_from_rows(
        evaluation.rows,
        evaluation.meta.get("model", ""),
        interim="interim_arms" in evaluation.meta,
    )


def accuracy_figure_from_rows(
    rows: Sequence[dict[str, Any]], model: str = "", interim: bool = False
) -> go.Figure:
    """GSM8K accuracy per arm (Wilson 95%) with the research note's Llama-3-8B anchors, each arm
    minus base (paired bootstrap 95%), and mean answer length; `interim`: the arms decoded so far."""
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=("accuracy (95% CI)", "arm minus base (paired 95% CI)", "mean tokens"),
    )
    names = [r["arm"] for r in rows]
    fig.add_trace(
        go.Bar(
            x=names,
            y=[r["accuracy"] for r in rows],
            error_y=wilson_error_bars(rows, "accuracy", "accuracy_low", "accuracy_high"),
            name=f"this study ({model})",
        ),
        1,
        1,
    )
    anchored = [r for r in rows if r.get("anchor") is not None]
    fig.add_trace(
        go.Scatter(
            x=[r["arm"] for r in anchored],
            y=[r["anchor"] / 100 for r in anchored],
            mode="markers",
            marker=dict(symbol="diamond", size=12, color="black"),
            name="research note (Llama-3-8B)",
        ),
        1,
        1,
    )
    compared = [r for r in rows if "difference" in r]
    fig.add_trace(
        go.Bar(
            x=[r["arm"] for r in compared],
            y=[r["difference"] for r in compared],
            error_y=wilson_error_bars(compared, "difference", "difference_low", "difference_high"),
            showlegend=False,
        ),
        1,
        2,
    )
    fig.add_trace(go.Bar(x=names, y=[r["mean_tokens"] for r in rows], showlegend=False), 1, 3)
    fig.add_hline(y=0, line_color="grey", row=1, col=2)
    fig.update_yaxes(range=[0, 1], row=1, col=1)
    title = "GSM8K, greedy, the same seeded test problems"
    if interim:
        title += " (interim: the arms decoded so far)"
    fig.update_layout(template=TEMPLATE, title=title)
    return fig


def kl_stops_figure(decoded) -> go.Figure:
    """KL-budget decoding, from the arm's own answers (`MathEvalResult`): the generated token at
    which each answer stopped being edited (never: its length), and the KL it had spent there,
    against the budget."""
    rows = decoded.rows
    budget = decoded.config.kl_budget
    cap = decoded.config.max_new_tokens
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "generated token at which editing stopped (never: answer length)",
            "KL(edited ‖ unedited) spent by the stop (never: by the end), nats",
        ),
    )
    stops = [r["edit_stop"] if r["edit_stop"] is not None else r["n_tokens"] for r in rows]
    fig.add_trace(
        go.Histogram(x=stops, xbins=dict(start=0, end=cap + 1, size=max(1, cap // 48))),
        row=1,
        col=1,
    )
    fig.update_xaxes(range=[0, cap + 1], title_text="generated token", row=1, col=1)
    spent = [r["kl_spent"] for r in rows if r.get("kl_spent") is not None]
    fig.add_trace(go.Histogram(x=spent, nbinsx=40), row=1, col=2)
    if budget is not None:
        fig.add_vline(
            x=budget,
            line_dash="dash",
            line_color="black",
            annotation_text=f"budget {budget:g}",
            row=1,
            col=2,
        )
    fig.update_xaxes(rangemode="tozero", title_text="nats", row=1, col=2)
    fig.update_yaxes(title_text="answers", row=1, col=1)
    never = sum(r["edit_stop"] is None for r in rows)
    fig.update_layout(
        template=TEMPLATE,
        showlegend=False,
        title=f"KL-budget decoding ({decoded.meta.get('arm', '')}, {len(rows)} answers, "
        f"{never} never stopped)",
    )
    return fig


def projection_figure(phase, bins: int = 60) -> go.Figure:
    """Per-token projections on the sum direction (trained RED-all and random REDs; the same bins
    for every edit, spanning ±x*) with ±x*, and the share of sums each edit breaks (Wilson 95%)."""
    layer, x_star = phase.meta["layer"], phase.meta["x_star"]
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.65, 0.35],
        subplot_titles=(
            f"projection at layer {layer} (probe units; share of tokens)",
            "sums broken (95% CI)",
        ),
    )
    edits = phase.tables["edits"]
    values = {r["edit"]: phase.tensors[f"projections_{r['edit']}"].tolist() for r in edits}
    reach = max([abs(v) for vs in values.values() for v in vs] + [0.0])
    if math.isfinite(x_star):
        reach = max(reach, x_star)
    reach = 1.05 * reach or 1.0
    colours = {r["edit"]: PALETTE[i % len(PALETTE)] for i, r in enumerate(edits)}
    for row in edits:
        fig.add_trace(
            go.Histogram(
                x=values[row["edit"]],
                name=row["edit"],
                histnorm="percent",
                opacity=0.6,
                xbins=dict(start=-reach, end=reach, size=2 * reach / bins),
                marker_color=colours[row["edit"]],
                legendgroup=row["edit"],
            ),
            1,
            1,
        )
    if math.isfinite(x_star):
        low, high = phase.meta.get("x_star_interval", (x_star, x_star))
        for sign in (-1, 1):
            fig.add_vline(
                x=sign * x_star,
                line_dash="dash",
                annotation_text=f"{'+' if sign > 0 else '−'}x* ({low:.3g}–{high:.3g})",
                annotation_position="top left" if sign > 0 else "top right",
                row=1,
                col=1,
            )
    broken = [r for r in edits if "broken_rate" in r]
    fig.add_trace(
        go.Bar(
            x=[r["edit"] for r in broken],
            y=[r["broken_rate"] for r in broken],
            error_y=wilson_error_bars(broken, "broken_rate", "broken_low", "broken_high"),
            marker_color=[colours[r["edit"]] for r in broken],
            showlegend=False,
        ),
        1,
        2,
    )
    fig.update_xaxes(range=[-reach, reach], row=1, col=1)
    fig.update_layout(
        template=TEMPLATE,
        barmode="overlay",
        title=f"Where the edits land on the sum direction (x* = {x_star:.3g} probe units)",
    )
    return fig


def swap_figure(phase) -> go.Figure:
    """Accuracy of the swapped answers against k (Wilson 95%), one line per variant; dotted, the
    same where RED-all's prefix differs from the base model's own first k tokens (the
    `own_prefix` control), so what identical prefixes keep does not count for the donor."""
    fig = go.Figure()
    rows = phase.tables["accuracy"]
    control = phase.tables.get("own_prefix", [])
    for index, variant in enumerate(dict.fromkeys(r["variant"] for r in rows)):
        every = [r for r in rows if r["variant"] == variant]
        differs = [
            {
                "k": r["k"],
                "accuracy": r["other_correct"] / r["other_n"],
                "low": r["other_low"],
                "high": r["other_high"],
            }
            for r in control
            if r["variant"] == variant and r["other_n"]
        ]
        for cell, label, dash in (
            (every, "all problems", "solid"),
            (differs, "prefix differs from base's own", "dot"),
        ):
            if cell:
                fig.add_trace(
                    go.Scatter(
                        x=[str(r["k"]) for r in cell],
                        y=[r["accuracy"] for r in cell],
                        error_y=wilson_error_bars(cell, "accuracy", "low", "high"),
                        name=f"{variant}, {label}",
                        line=dict(color=PALETTE[index % len(PALETTE)], dash=dash),
                    )
                )
    fig.update_layout(
        template=TEMPLATE,
        title=(
            f"Prefix swap: trained RED-all writes k tokens, base continues "
            f"({phase.meta.get('n_problems', 0)} problems)"
        ),
        xaxis=dict(title="k (donor tokens)", type="category"),
        yaxis_title="accuracy (95% CI)",
        yaxis_range=[0, 1],
    )
    return fig


def pool_figure(
    rows: Sequence[dict[str, Any]], note_difference: float | None = None, interim: bool = False
) -> go.Figure:
    """Claim 1 on each of the swap's pools (`rows`: the summary's `swap_pool` table): RED-all
    minus base on n seeded test problems (paired bootstrap 95%; each pool holds the smaller ones),
    beside the research note's difference (`note_difference`, a share) and the smallest drop each
    n detects with 80% power."""
    compared = [r for r in rows if "difference" in r]
    sizes = [r["pool"] for r in compared]
    fig = go.Figure(
        go.Scatter(
            x=sizes,
            y=[r["difference"] for r in compared],
            error_y=wilson_error_bars(compared, "difference", "difference_low", "difference_high"),
            mode="markers+lines",
            name="RED-all minus base (paired 95% CI)",
        )
    )
    detectable = [r for r in compared if r.get("detectable_difference") is not None]
    fig.add_trace(
        go.Scatter(
            x=[r["pool"] for r in detectable],
            y=[-r["detectable_difference"] for r in detectable],
            mode="lines",
            line=dict(dash="dot", color="grey"),
            name="smallest drop detectable (80% power)",
        )
    )
    fig.add_hline(y=0, line_color="grey")
    if note_difference is not None:
        fig.add_hline(
            y=note_difference,
            line_dash="dash",
            line_color="black",
            annotation_text=f"research note (Llama-3-8B): {note_difference:+.1%}",
            annotation_position="top left",
        )
    title = "Claim 1 on more problems: RED-all minus base on n seeded GSM8K test problems "
    title += "(nested pools; interim)" if interim else "(nested pools)"
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis=dict(title="problems (n)", tickvals=sizes),
        yaxis=dict(title="accuracy difference", tickformat="+.0%"),
    )
    return fig


def faithfulness_figure(phase) -> go.Figure:
    """Held-out faithfulness-probe accuracy per layer: base and each arm, and arm minus base."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("probe accuracy", "arm minus base"))
    rows = phase.tables["per_layer"]
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    for index, arm in enumerate(arms):
        cell = [r for r in rows if r["arm"] == arm]
        layers = [r["layer"] for r in cell]
        colour = PALETTE[(index + 1) % len(PALETTE)]
        if index == 0:
            fig.add_trace(
                go.Scatter(
                    x=layers,
                    y=[r["base_accuracy"] for r in cell],
                    name="base",
                    line=dict(color=PALETTE[0]),
                ),
                1,
                1,
            )
        fig.add_trace(
            go.Scatter(
                x=layers, y=[r["edited_accuracy"] for r in cell], name=arm, line=dict(color=colour)
            ),
            1,
            1,
        )
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=[r["delta_accuracy"] for r in cell],
                name=arm,
                line=dict(color=colour),
                showlegend=False,
            ),
            1,
            2,
        )
    fig.add_hline(y=0, line_color="grey", row=1, col=2)
    n_test = phase.meta.get("n_test")
    fig.update_xaxes(title_text="layer")
    fig.update_layout(
        template=TEMPLATE,
        title="Number faithfulness: base vs trained arms"
        + (f" ({n_test} held-out texts; one text is {1 / n_test:.3f})" if n_test else ""),
    )
    return fig


__all__ = [
    "accuracy_figure",
    "accuracy_figure_from_rows",
    "budget_figure",
    "faithfulness_figure",
    "kl_stops_figure",
    "loss_curves_figure",
    "projection_figure",
    "swap_figure",
    "trailing_mean",
    "x_star_figure",
]
