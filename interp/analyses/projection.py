"""Where an edit lands on the number direction: its change to the residual stream, per layer and
token, projected on the unit probe direction and expressed in probe units (the units of x).

    proj = projection.run(model, [red_edit], probe, perturbation=sweep)
    proj.share_beyond_threshold()     # per layer: share of token changes with |projection| > x*

Compared with the perturbation threshold x*, this says whether an edit trained for another
purpose moves the model's numbers far enough to break arithmetic.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.number_probe import NumberProbeResult
from interp.analyses.perturbation import PerturbationResult
from interp.core.runner import activations, shared_prefix_batches
from interp.core.tokens import encode_prompts
from interp.data.arithmetic import (
    addition_problems,
    default_style,
    encode_problems,
    with_prompt_template,
)
from interp.interventions import Edit, EditError, edits
from interp.models import model_name
from interp.results import Result


@dataclass(frozen=True)
class ProjectionConfig:
    layers: tuple[int, ...] | None = None  # None: every probed layer
    probe_position: str = "last"
    n_prompts: int = 64  # default prompts: addition problems with their answers
    digits: int = 4
    seed: int = 2
    batch_size: int = 16
    edit_description: str = ""
    prompt_template: str | None = None  # the prompt with {a}, {b} slots; set by run()


@dataclass
class ProjectionResult(Result):
    config_class = ProjectionConfig

    def projections(self, layer: int) -> torch.Tensor:
        """Projections (probe units) of every real token's change at `layer`."""
        return self.tensors["projections"][self.layers.index(layer)]

    def share_beyond_threshold(self) -> dict[int, float]:
        return {int(k): v for k, v in zip(self.layers, self.tensors["share_beyond"].tolist())}

    def figure(self):
        from interp.figures.number import projection_histogram_figure

        return projection_histogram_figure(self)


@torch.no_grad()
def run(
    model,
    edit_list: Sequence[Edit],
    probe: NumberProbeResult,
    prompts: Sequence[str] | Sequence[Sequence[int]] | None = None,
    perturbation: PerturbationResult | None = None,
    x_star: float | None = None,
    **overrides,
) -> ProjectionResult:
    """Project each edit-induced residual change on the number direction, per layer and token."""
    config = with_prompt_template(ProjectionConfig(**overrides), model.tokenizer)
    if probe.d_model != model.cfg.d_model:
        raise EditError(
            f"the probe has width {probe.d_model} but the model has width {model.cfg.d_model}"
        )
    if not edit_list:
        raise EditError("projection needs at least one edit to measure")
    layers = list(config.layers) if config.layers else probe.layers
    for layer in layers:
        probe.direction(layer, config.probe_position)
    if prompts is None:
        style = default_style(model.tokenizer)
        problems = addition_problems(config.n_prompts, config.digits, seed=config.seed)
        sequences = [e.prompt + e.answer for e in encode_problems(problems, model.tokenizer, style)]
    else:
        sequences = encode_prompts(model, prompts)
    hooks = [f"blocks.{layer}.{probe.config.site}" for layer in layers]
    directions = torch.stack([probe.direction(layer, config.probe_position) for layer in layers])
    units = torch.tensor([probe.unit_length(layer, config.probe_position) for layer in layers])
    read = functools.partial(
        _along_directions,
        model,
        sequences,
        hooks=hooks,
        directions=directions,
        units=units,
        batch_size=config.batch_size,
    )
    plain, edited = read(()), read(edit_list)
    # the change along the direction is the difference of the two read-outs (float64: exact
    # enough that a change of 1e-3 units survives a read-out of thousands)
    changes = [e - p for p, e in zip(plain, edited)]
    projections = torch.cat(changes, dim=1).float()  # [layer, tokens]
    thresholds = torch.tensor(
        [_threshold_for(layer, perturbation, x_star) for layer in layers], dtype=torch.float32
    )
    share = (projections.abs() > thresholds[:, None]).float().mean(-1)
    share[thresholds.isnan()] = float("nan")
    share[thresholds.isnan()] = float("nan")
    tensors = {
        "layers": torch.tensor(layers),
        "projections": projections,
        "x_star": thresholds,
        "share_beyond": share,
    }
    table = [
        {
            "layer": layer,
            "mean_abs": float(projections[i].abs().mean()),
            "max_abs": float(projections[i].abs().max()),
            "x_star": float(thresholds[i]),
            "share_beyond_x_star": float(share[i]),
        }
        for i, layer in enumerate(layers)
    ]
    meta = {
        "model": model_name(model),
        "n_sequences": len(sequences),
        "n_tokens": projections.shape[1],
    }
    return ProjectionResult(config=config, tensors=tensors, tables={"per_layer": table}, meta=meta)


def _along_directions(
    model,
    sequences: Sequence[Sequence[int]],
    edit_list: Sequence[Edit],
    *,
    hooks: Sequence[str],
    directions: Float[Tensor, "layer d"],
    units: Float[Tensor, " layer"],
    batch_size: int,
) -> list[Float[Tensor, "layer tokens"]]:
    """Per sequence, the residual at each hook read along its direction in probe units, at every
    token, under `edit_list`. The prefix all sequences share runs once
    (`interp.core.runner.shared_prefix_batches`); its read-outs are the same for every sequence."""
    wanted = set(hooks)
    directions = directions.double()
    units = units.double()[:, None, None]
    own: list[Tensor | None] = [None] * len(sequences)
    shared = 0
    for batch in shared_prefix_batches(
        model,
        sequences,
        edit_list=edit_list,
        names_filter=lambda name: name in wanted,
        batch_size=batch_size,
    ):
        stacked = torch.stack([batch.cache[h] for h in hooks]).cpu().double()  # [hook, b, own, d]
        along = torch.einsum("hbsd,hd->hbs", stacked, directions) / units
        real = batch.mask[:, batch.shared_length :].bool().cpu()
        for r in range(along.shape[1]):
            own[batch.rows.start + r] = along[:, r, real[r]]
        shared = batch.shared_length
    if shared == 0:
        return own
    device = next(model.parameters()).device
    prefix = torch.tensor([list(sequences[0][:shared])], device=device)
    with edits(model, edit_list):
        _, cache = activations(model, prefix, names_filter=lambda name: name in wanted)
    stacked = torch.stack([cache[h] for h in hooks]).cpu().double()  # [hook, 1, shared, d]
    prefix_along = (torch.einsum("hbsd,hd->hbs", stacked, directions) / units)[:, 0]
    return [torch.cat([prefix_along, tokens], dim=1) for tokens in own]


def _threshold_for(
    layer: int, perturbation: PerturbationResult | None, x_star: float | None
) -> float:
    """x* for a layer: given explicitly, or from a sweep at that very layer; else NaN.

    Probe units differ from layer to layer, so an x* measured at one layer says nothing about
    another; such layers get no threshold (NaN) rather than a borrowed one.
    """
    if x_star is not None:
        return float(x_star)
    if perturbation is not None and layer in perturbation.layers:
        return perturbation.x_star(layer)
    return float("nan")
