"""Push the residual stream along the number direction and measure n-digit addition errors.

    probe = number_probe.run(model)
    sweep = perturbation.run(model, probe, layers=(8, 12))
    sweep.x_star(12)     # push (in probe units) at which 5 in 1,000 answers go wrong, with a CI

Only problems the unedited model gets right are used, so every error is caused by the push.
Exact greedy correctness comes from one teacher-forced forward per (problem, strength), batched
(see `interp.teacher_forcing`); the direction of each error (answer larger or smaller) comes free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from interp.analyses.number_probe import NumberProbeResult
from interp.data.arithmetic import (
    ArithmeticDataError,
    addition_problems,
    default_style,
    digit_token_ids,
    encode_problems,
)
from interp.interventions import Edit, EditError, PushAlong
from interp.models import model_name
from interp.positions import AllPositions, PositionRule
from interp.results import Result
from interp.stats import threshold_with_ci, wilson_interval
from interp.teacher_forcing import greedy_outcomes


@dataclass(frozen=True)
class PerturbationConfig:
    layers: tuple[int, ...] | None = None  # None: the layer where the sum probe is best
    strengths: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)  # probe units; both signs run
    probe_position: str = "last"
    digits: int = 4
    n_problems: int = 300
    style: str | None = None
    push_positions: dict | None = None  # a PositionRule as dict; None: every position
    threshold: float = 0.005
    n_bootstrap: int = 500
    seed: int = 1
    batch_size: int = 32


@dataclass
class PerturbationResult(Result):
    config_class = PerturbationConfig

    @property
    def layers(self) -> list[int]:
        return [int(x) for x in self.tensors["layers"]]

    @property
    def signed_strengths(self) -> list[float]:
        return self.tensors["signed_strengths"].tolist()

    def x_star(self, layer: int | None = None) -> float:
        """Threshold push at `layer` (default: the first measured); nearest measured layer otherwise."""
        row = self._nearest(layer)
        return float(self.tensors["x_star"][row, 0])

    def x_star_interval(self, layer: int | None = None) -> tuple[float, float]:
        row = self._nearest(layer)
        return float(self.tensors["x_star"][row, 1]), float(self.tensors["x_star"][row, 2])

    def error_rate(self, layer: int | None = None) -> list[float]:
        return self.tensors["error_rate"][self._nearest(layer)].tolist()

    def _nearest(self, layer: int | None) -> int:
        if layer is None:
            return 0
        return int(np.argmin([abs(measured - layer) for measured in self.layers]))

    def figure(self):
        from interp.plots import error_curve_figure

        return error_curve_figure(self)


def run(model, probe: NumberProbeResult, **overrides) -> PerturbationResult:
    """Sweep push strengths (both signs) at each layer; error rate, direction of errors, x*."""
    config = PerturbationConfig(**overrides)
    if probe.d_model != model.cfg.d_model:
        raise EditError(
            f"the probe was fit on a model of width {probe.d_model}, this model has width "
            f"{model.cfg.d_model}: fit number_probe.run on this model first"
        )
    layers = list(config.layers) if config.layers else [probe.best_layer(config.probe_position)]
    for layer in layers:
        if not 0 <= layer < model.cfg.n_layers:
            raise EditError(
                f"layer {layer} is out of range: this model has layers 0..{model.cfg.n_layers - 1}"
            )
        probe.direction(layer, config.probe_position)  # a clear error if that layer was not probed
    rule = (
        PositionRule.from_dict(config.push_positions) if config.push_positions else AllPositions()
    )
    style = config.style or default_style(model.tokenizer)
    encoded = encode_problems(
        addition_problems(config.n_problems, config.digits, seed=config.seed),
        model.tokenizer,
        style,
    )
    digit_ids = digit_token_ids(model.tokenizer)
    base = greedy_outcomes(model, encoded, digit_ids, batch_size=config.batch_size, progress=True)
    correct = [e for e, ok in zip(encoded, base.correct.tolist()) if ok]
    if not correct:
        raise ArithmeticDataError(
            f"the unedited model gets none of {len(encoded)} {config.digits}-digit problems right "
            f"({style} prompts): use fewer digits, another prompt style, or a stronger model"
        )
    magnitudes = sorted(set(abs(s) for s in config.strengths if s != 0))
    signed = [-m for m in reversed(magnitudes)] + magnitudes
    site = probe.config.site
    n = len(correct)
    errors = torch.zeros(len(layers), len(signed), n, dtype=torch.bool)
    moved = torch.zeros(len(layers), len(signed), n, dtype=torch.long)
    rows = [e for _ in signed for e in correct]
    amounts = torch.tensor([s for s in signed for _ in correct])
    for li, layer in enumerate(layers):
        push = PushAlong(
            probe.direction(layer, config.probe_position),
            amount=1.0,
            unit=probe.unit_length(layer, config.probe_position),
        )
        hook = f"blocks.{layer}.{site}"

        def edits_for_rows(rows_slice: slice, push=push, hook=hook):
            push.amount = amounts[rows_slice]
            return [Edit(hook, push, rule)]

        outcome = greedy_outcomes(model, rows, digit_ids, edits_for_rows, config.batch_size, True)
        errors[li] = ~outcome.correct.reshape(len(signed), n)
        moved[li] = outcome.moved.reshape(len(signed), n)
    tensors, table = _summarise(layers, signed, magnitudes, errors, moved, config)
    meta = {
        "model": model_name(model),
        "style": style,
        "n_problems": len(encoded),
        "n_base_correct": n,
        "base_accuracy": n / len(encoded),
    }
    return PerturbationResult(config=config, tensors=tensors, tables={"sweep": table}, meta=meta)


def _summarise(layers, signed, magnitudes, errors, moved, config):
    """Rates, Wilson intervals, the share of errors in the push's direction, and x* per layer."""
    n = errors.shape[-1]
    sign = torch.tensor(signed).sign().long()[None, :, None]
    with_push = (moved == sign) & errors
    error_rate = errors.float().mean(-1)
    x_star = []
    table = []
    for li, layer in enumerate(layers):
        pooled = np.stack(
            [
                np.concatenate(
                    [errors[li, signed.index(m)].numpy(), errors[li, signed.index(-m)].numpy()]
                )
                for m in magnitudes
            ]
        )
        x_star.append(
            threshold_with_ci(
                np.array(magnitudes), pooled, config.threshold, config.n_bootstrap, config.seed
            )
        )
        for si, strength in enumerate(signed):
            n_errors = int(errors[li, si].sum())
            low, high = wilson_interval(n_errors, n)
            table.append(
                {
                    "layer": layer,
                    "strength": strength,
                    "error_rate": n_errors / n,
                    "error_low": low,
                    "error_high": high,
                    "moved_with_push": int(with_push[li, si].sum()) / n,
                    "n": n,
                }
            )
    tensors = {
        "layers": torch.tensor(layers),
        "signed_strengths": torch.tensor(signed),
        "error_rate": error_rate,
        "moved_with_push_rate": with_push.float().mean(-1),
        "errors": errors,
        "moved": moved,
        "x_star": torch.tensor(x_star, dtype=torch.float64),
    }
    return tensors, table
