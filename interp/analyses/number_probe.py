"""Linear number probes per layer: how well, and along which direction, the residual stream
encodes the numbers of an addition prompt.

    result = number_probe.run(model)
    result.figure()                          # R^2 by layer, one line per position
    result.direction(layer=12)               # unit direction of the sum probe at layer 12

Positions: the last token of each operand (probing a and b) and the last prompt token (probing
the sum the model is about to write).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from interp.data.arithmetic import addition_problems, encode_problems, with_prompt_template
from interp.models import model_name
from interp.probes import activations_at, fit_probes, layer_hooks, split_indices
from interp.results import Result


@dataclass(frozen=True)
class NumberProbeConfig:
    n_problems: int = 2000
    digits: tuple[int, ...] = (1, 2, 3, 4)
    style: str | None = None  # None: chat for instruct models, numprobe otherwise
    prompt_template: str | None = None  # the prompt with {a}, {b} slots; set by run()
    positions: tuple[str, ...] = ("a_last", "b_last", "last")
    layers: tuple[int, ...] | None = None  # None: every layer
    site: str = "hook_resid_post"
    target: str = "log2"
    test_fraction: float = 0.2
    seed: int = 0
    batch_size: int = 32


@dataclass
class NumberProbeResult(Result):
    config_class = NumberProbeConfig

    def _index(self, layer: int, position: str) -> tuple[int, int]:
        if position not in self.config.positions:
            raise ValueError(f"no probe at position {position!r}; probed: {self.config.positions}")
        if layer not in self.layers:
            raise ValueError(f"no probe at layer {layer}; probed layers: {self.layers}")
        return self.config.positions.index(position), self.layers.index(layer)

    def direction(self, layer: int, position: str = "last") -> Float[Tensor, " d"]:
        """Unit direction of the probe at `layer` and `position`."""
        p, i = self._index(layer, position)
        return self.tensors["directions"][p, i]

    def unit_length(self, layer: int, position: str = "last") -> float:
        """Residual length of one probe unit (moves the read-out by one target unit)."""
        p, i = self._index(layer, position)
        return float(self.tensors["unit_lengths"][p, i])

    def r2(self, position: str = "last") -> list[float]:
        return self.tensors["r2"][self.config.positions.index(position)].tolist()

    def best_layer(self, position: str = "last") -> int:
        return self.layers[int(torch.tensor(self.r2(position)).nan_to_num(-1).argmax())]

    @property
    def d_model(self) -> int:
        return int(self.tensors["directions"].shape[-1])

    def figure(self):
        from interp.figures.number import probe_quality_figure

        return probe_quality_figure(self)


def run(model, **overrides) -> NumberProbeResult:
    """Fit value probes at every layer (and position) on seeded addition prompts."""
    config = with_prompt_template(NumberProbeConfig(**overrides), model.tokenizer)
    for name, value in (("n_problems", config.n_problems), ("batch_size", config.batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    style = config.style
    problems = addition_problems(config.n_problems, config.digits, seed=config.seed)
    encoded = encode_problems(problems, model.tokenizer, style)
    hooks = layer_hooks(model, config.layers, config.site)
    layers = list(range(model.cfg.n_layers)) if config.layers is None else list(config.layers)
    acts = activations_at(
        model,
        [e.prompt for e in encoded],
        [[e.position(p) for p in config.positions] for e in encoded],
        hooks,
        batch_size=config.batch_size,
        progress=True,
    )  # [layer, problem, position, d]
    train, test = split_indices(len(encoded), config.test_fraction, config.seed)
    fits = []
    for p, position in enumerate(config.positions):
        values = np.array([e.value_at(position) for e in encoded])
        fits.append(fit_probes(acts[:, :, p], values, train, test, config.target))
    tensors = {
        "layers": torch.tensor(layers),
        "r2": torch.stack([f.r2 for f in fits]),
        "pearson": torch.stack([f.pearson for f in fits]),
        "within_1pct": torch.stack([f.within_1pct for f in fits]),
        "directions": torch.stack([f.directions for f in fits]),
        "unit_lengths": torch.stack([f.unit_lengths for f in fits]),
        "weights": torch.stack([f.weights for f in fits]),
        "intercepts": torch.stack([f.intercepts for f in fits]),
        "ridge_alphas": torch.stack([f.alphas for f in fits]),
    }
    rows = [
        {
            "position": position,
            "layer": layer,
            "r2": float(tensors["r2"][p, i]),
            "pearson": float(tensors["pearson"][p, i]),
            "within_1pct": float(tensors["within_1pct"][p, i]),
            "unit_length": float(tensors["unit_lengths"][p, i]),
        }
        for p, position in enumerate(config.positions)
        for i, layer in enumerate(layers)
    ]
    meta = {"model": model_name(model), "style": style, "n_train": len(train), "n_test": len(test)}
    return NumberProbeResult(config=config, tensors=tensors, tables={"per_layer": rows}, meta=meta)
