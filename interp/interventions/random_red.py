"""A random RED: the untrained stand-in for a RED fine-tune used where no trained edit exists yet."""

from __future__ import annotations

import math
from numbers import Real

from interp.interventions.edits import Edit
from interp.interventions.functions import RED, EditError


def random_red_edits(model, bias_norm: float, seed: int = 0) -> list[Edit]:
    """A random bias of norm `bias_norm` (scale 1) at every block's MLP output; seeded per layer.

    Label its numbers as a stand-in wherever they appear: it is not trained on anything.
    """
    if not (isinstance(bias_norm, Real) and math.isfinite(bias_norm) and bias_norm >= 0):
        raise EditError(
            f"the random RED's bias norm must be a finite number >= 0, got {bias_norm!r}: pass "
            f"e.g. 0.5 (0 leaves the model unchanged)"
        )
    return [
        Edit(
            f"blocks.{layer}.hook_mlp_out",
            RED.random(model.cfg.d_model, bias_norm, seed=seed + layer),
        )
        for layer in range(model.cfg.n_layers)
    ]
