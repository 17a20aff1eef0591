"""Two faithfulness arms compared: edited minus base, per layer, per head and for the likelihood.

base = faithfulness.run(model)
edited = faithfulness.run(Arm.edited(model, red_edits, "RED"))
difference = faithfulness_difference.run(base, edited)
difference.figure()          # heatmaps: red where faithfulness rises, blue where it falls
"""

from __future__ import annotations

from dataclasses import dataclass

from interp.analyses.faithfulness import FaithfulnessResult
from interp.figures.faithfulness import LAYER_METRICS, faithfulness_difference_figure
from interp.results import Result

__all__ = ["ComparisonConfig", "FaithfulnessComparison", "run"]


@dataclass(frozen=True)
class ComparisonConfig:
    base: str = "base"
    edited: str = "edited"


@dataclass
class FaithfulnessComparison(Result):
    """Edited minus base: per-layer probe metrics, per-head accuracy, the likelihood score."""

    config_class = ComparisonConfig

    def figure(self):
        return faithfulness_difference_figure(self)


def run(base: FaithfulnessResult, edited: FaithfulnessResult) -> FaithfulnessComparison:
    """Differences edited - base (positive: the edited arm is more faithful)."""
    if base.layers != edited.layers:
        raise ValueError(
            f"the arms probed different layers ({base.layers} vs {edited.layers}); rerun with the same"
        )
    if base.tables["triples"] != edited.tables["triples"]:
        raise ValueError("the arms were probed on different triples; rerun them on the same set")
    tensors = {"layers": base.tensors["layers"]}
    for metric in LAYER_METRICS:
        tensors[f"base_{metric}"] = base.tensors[metric]
        tensors[f"edited_{metric}"] = edited.tensors[metric]
        tensors[f"delta_{metric}"] = edited.tensors[metric] - base.tensors[metric]
    if base.has_heads and edited.has_heads:
        tensors["delta_head_accuracy"] = (
            edited.tensors["head_accuracy"] - base.tensors["head_accuracy"]
        )
        tensors["delta_head_auc"] = edited.tensors["head_auc"] - base.tensors["head_auc"]
    meta = {
        "model": base.meta.get("model"),
        "base_likelihood_accuracy": base.likelihood_accuracy(),
        "edited_likelihood_accuracy": edited.likelihood_accuracy(),
        "delta_likelihood_accuracy": edited.likelihood_accuracy() - base.likelihood_accuracy(),
        "base_likelihood_margin": base.likelihood_margin(),
        "edited_likelihood_margin": edited.likelihood_margin(),
        "edited_edits": edited.config.edit_description,
    }
    if "transfer_accuracy" in edited.tensors:
        tensors["edited_transfer_accuracy"] = edited.tensors["transfer_accuracy"]
    rows = [
        {
            "layer": layer,
            **{f"delta_{m}": float(tensors[f"delta_{m}"][i]) for m in LAYER_METRICS},
            **{f"base_{m}": float(tensors[f"base_{m}"][i]) for m in LAYER_METRICS},
            **{f"edited_{m}": float(tensors[f"edited_{m}"][i]) for m in LAYER_METRICS},
        }
        for i, layer in enumerate(base.layers)
    ]
    config = ComparisonConfig(base=base.config.arm, edited=edited.config.arm)
    return FaithfulnessComparison(
        config=config, tensors=tensors, tables={"per_layer": rows}, meta=meta
    )
