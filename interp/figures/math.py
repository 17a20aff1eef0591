"""Figures of the math line: math-eval accuracy and answer lengths, prefix-swap accuracy against k,
and how close each arm's prefix stays to a correct solution."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.figures.common import TEMPLATE, wilson_error_bars

# How the continuer came by the keys/values of prompt + prefix, as the legend says it.
VARIANT_LABELS = {
    "donor_cache": "donor's KV cache (prefix encoded with the donor's edits)",
    "recompute": "recomputed by the continuer",
}


def math_eval_figure(result) -> go.Figure:
    """Accuracy with its 95% interval, and the distribution of answer lengths (cap marked)."""
    low, high = result.accuracy_interval
    bar = {"accuracy": result.accuracy, "low": low, "high": high}
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.3, 0.7],
        subplot_titles=(
            f"accuracy ({result.n_correct}/{result.n})",
            f"tokens generated (mean {result.mean_tokens:.0f}, {result.cap_rate:.0%} hit the cap)",
        ),
    )
    fig.add_trace(
        go.Bar(
            x=[result.meta.get("arm", "model")],
            y=[result.accuracy],
            error_y=wilson_error_bars([bar], "accuracy", "low", "high"),
            showlegend=False,
        ),
        row=1,
        col=1,
    )
    for correct, colour in ((True, "#2ca02c"), (False, "#d62728")):
        fig.add_trace(
            go.Histogram(
                x=[r["n_tokens"] for r in result.rows if bool(r["correct"]) == correct],
                name="correct" if correct else "wrong",
                marker_color=colour,
                nbinsx=30,
                opacity=0.7,
            ),
            row=1,
            col=2,
        )
    config = result.config
    fig.add_vline(x=config.max_new_tokens, line_dash="dot", annotation_text="cap", row=1, col=2)
    fig.update_layout(
        template=TEMPLATE,
        barmode="stack",
        title=(
            f"{config.dataset} ({config.split}), {result.meta.get('model', '')}: "
            f"accuracy {result.accuracy:.1%} (95% CI {low:.1%}–{high:.1%})"
        ),
    )
    fig.update_yaxes(range=[0, 1], title_text="accuracy", row=1, col=1)
    fig.update_xaxes(title_text="tokens", row=1, col=2)
    fig.update_yaxes(title_text="problems", row=1, col=2)
    return fig


def prefix_swap_figure(result) -> go.Figure:
    """Accuracy of the swapped answers against k, one line per variant, 95% Wilson bars."""
    config, meta = result.config, result.meta
    fig = go.Figure()
    labels = [str(k) for k in config.ks]
    for variant, dash in zip(config.variants, ("solid", "dash"), strict=False):
        rows = {r["k"]: r for r in result.tables["accuracy"] if r["variant"] == variant}
        ordered = [rows[k] for k in config.ks]
        fig.add_trace(
            go.Scatter(
                x=labels,
                y=[r["accuracy"] for r in ordered],
                error_y=wilson_error_bars(ordered, "accuracy", "low", "high"),
                mode="lines+markers",
                line_dash=dash,
                name=VARIANT_LABELS.get(variant, variant),
            )
        )
    fig.add_hline(
        y=meta["continuer_accuracy"],
        line_dash="dot",
        line_color="green",
        annotation_text=f"{meta['continuer_name']} alone",
    )
    fig.add_hline(
        y=meta["donor_accuracy"],
        line_dash="dot",
        line_color="red",
        annotation_text=f"{meta['donor_name']} alone",
        annotation_position="bottom right",
    )
    which = "the donor gets wrong" if config.only_donor_wrong else "drawn"
    fig.update_layout(
        template=TEMPLATE,
        title=(
            f"Prefix swap: {meta['donor_name']} writes k answer tokens, "
            f"{meta['continuer_name']} goes on<br><sup>{meta['n_problems']} "
            f"{config.dataset} problems {which}, {meta.get('model', '')}</sup>"
        ),
        xaxis_title="k (answer tokens written by the donor)",
        yaxis_title="accuracy of the finished answer",
        yaxis_range=[0, 1],
        legend_title="continuer's cache for prompt + prefix:",
        legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0),
    )
    return fig


def closeness_figure(result) -> go.Figure:
    """Gold-answer log-probability after each arm's prefix, and the donor's agreement by k."""
    rows = result.tables.get("closeness", [])
    if not rows:
        raise ValueError("this result has no closeness rows (run with closeness=True)")
    config, meta = result.config, result.meta
    labels = [str(k) for k in config.ks]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "gold answer right after the prefix",
            "donor tokens on the continuer's own path",
        ),
    )
    for arm, colour in (("donor", "#d62728"), ("continuer", "#1f77b4")):
        means, errors = [], []
        for k in config.ks:
            values = np.array([r["gold_logprob"] for r in rows if r["arm"] == arm and r["k"] == k])
            means.append(float(values.mean()))
            errors.append(float(1.96 * values.std(ddof=1) / np.sqrt(len(values))))
        fig.add_trace(
            go.Scatter(
                x=labels,
                y=means,
                error_y=dict(type="data", array=errors),
                mode="lines+markers",
                name=f"{meta[f'{arm}_name']}'s prefix",
                marker_color=colour,
            ),
            row=1,
            col=1,
        )
    shares = [
        float(np.mean([r["agreement"] for r in rows if r["arm"] == "donor" and r["k"] == k]))
        for k in config.ks
        if k > 0
    ]
    fig.add_trace(
        go.Scatter(
            x=[str(k) for k in config.ks if k > 0],
            y=shares,
            mode="lines+markers",
            name="share of donor tokens on the continuer's path",
            marker_color="#7f7f7f",
        ),
        row=1,
        col=2,
    )
    fig.update_xaxes(title_text="k", row=1, col=1)
    fig.update_xaxes(title_text="k", row=1, col=2)
    fig.update_yaxes(title_text="log p(gold | prefix + cue), nats (mean, 95% CI)", row=1, col=1)
    fig.update_yaxes(title_text="share of the first k tokens", range=[0, 1], row=1, col=2)
    fig.update_layout(
        template=TEMPLATE,
        title=(
            f"How close each arm's prefix stays to a correct solution<br><sup>"
            f"{meta['n_problems']} problems; judge: the unedited model; cue "
            f"“{config.answer_cue.strip()}”</sup>"
        ),
        legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0),
    )
    return fig
