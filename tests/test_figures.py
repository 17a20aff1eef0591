"""Figures draw what they claim: reference lines visible, histograms comparable across edits."""

import plotly.io as pio
import torch

from interp.analyses.reft_study import ProjectionPhase, ReftStudyConfig
from interp.figures.common import TEMPLATE
from interp.figures.reft_study import trailing_mean


def test_the_template_draws_reference_lines():
    # simple_white draws shape lines 0 px wide, which hid every x*, target and cap line.
    defaults = pio.templates[TEMPLATE].layout.shapedefaults
    assert defaults.line.width > 0 and defaults.opacity > 0
    assert not pio.templates[TEMPLATE].layout.xaxis.showgrid  # still simple_white otherwise


def test_trailing_mean_averages_each_value_with_those_before_it():
    assert trailing_mean([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert trailing_mean([2.0, 4.0], 8) == [2.0, 3.0]


def test_projection_histograms_share_bins_and_span_plus_minus_x_star():
    edits = [
        {"edit": "wide", "broken_rate": 0.1, "broken_low": 0.05, "broken_high": 0.2},
        {"edit": "narrow", "broken_rate": 0.0, "broken_low": 0.0, "broken_high": 0.04},
    ]
    phase = ProjectionPhase(
        config=ReftStudyConfig(),
        tensors={
            "projections_wide": torch.linspace(-3, 4, 50),
            "projections_narrow": torch.linspace(-0.1, 0.1, 50),
        },
        tables={"edits": edits},
        meta={"layer": 15, "x_star": 12.0, "x_star_interval": [5.0, 28.0]},
    )
    figure = phase.figure()
    histograms = [t for t in figure.data if t.type == "histogram"]
    assert len(histograms) == 2
    assert histograms[0].xbins == histograms[1].xbins  # one bin width: the bars compare
    assert histograms[0].xbins.start <= -12.0 and histograms[0].xbins.end >= 12.0
    assert sorted(s.x0 for s in figure.layout.shapes) == [-12.0, 12.0]
    bars = [t for t in figure.data if t.type == "bar"][0]
    assert list(bars.marker.color) == [histograms[0].marker.color, histograms[1].marker.color]
