"""Linear probes on the residual stream (all layers from one forward per batch)."""

from interp.probes.activations import activations_at, layer_hooks
from interp.probes.linear import ProbeFit, fit_probes, split_indices

__all__ = ["ProbeFit", "activations_at", "fit_probes", "layer_hooks", "split_indices"]
