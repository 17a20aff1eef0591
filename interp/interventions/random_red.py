"""A random RED: the untrained stand-in for a RED fine-tune used where no trained edit exists yet."""

from __future__ import annotations

from interp.interventions.edits import Edit
from interp.interventions.functions import RED


def random_red_edits(model, bias_norm: float, seed: int = 0) -> list[Edit]:
    """A random bias of norm `bias_norm` (scale 1) at every block's MLP output; seeded per layer.

    Label its numbers as a stand-in wherever they appear: it is not trained on anything.
    """
    if not bias_norm >= 0:
        raise ValueError(f"the RED bias norm must be a number >= 0, got {bias_norm}")
    return [
        Edit(
            f"blocks.{layer}.hook_mlp_out",
            RED.random(model.cfg.d_model, bias_norm, seed=seed + layer),
        )
        for layer in range(model.cfg.n_layers)
    ]
