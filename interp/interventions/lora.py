"""LoRA: rank-r weight deltas on chosen linear layers of the frozen model (the weight-space baseline).

    lora = LoRA.for_model(model, modules=("q_proj", "v_proj"), rank=8)
    with lora.applied(model):      # adds x A^T B^T * alpha/r to each chosen layer's output
        logits = model(tokens)

`applied` attaches a forward hook to each chosen `nn.Linear` of the Hugging Face model inside the
bridge and always removes it when the block ends, on error too; the model's own weights and
modules are never replaced or changed. B starts at zero, so a fresh LoRA changes nothing.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from interp.storage import StorageError, check_keys, load_folder, save_folder

KIND = "lora"
CONFIG_KEYS = ("rank", "alpha", "modules")


class LoRAError(ValueError):
    """A LoRA that does not fit the model, or a broken checkpoint; the message says what to do."""


class LoRADelta(nn.Module):
    """The low-rank update of one linear layer: x -> (x A^T) B^T * alpha / rank."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float):
        super().__init__()
        if not 0 < rank <= min(in_features, out_features):
            raise LoRAError(f"rank must be in 1..{min(in_features, out_features)}, got {rank}")
        self.down = nn.Parameter(torch.empty(rank, in_features))
        self.up = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))
        self.scaling = alpha / rank

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_out"]:
        # float32 parameters (trained master copies) cast to the activation's dtype, never x to theirs
        down = self.down.to(x.dtype)
        up = self.up.to(x.dtype)
        return (x @ down.T) @ up.T * self.scaling


def linear_modules(model) -> dict[str, nn.Linear]:
    """Every `nn.Linear` of the model's Hugging Face module, by its Hugging Face name."""
    root = getattr(model, "original_model", model)
    found = {}
    for name, module in root.named_modules():
        if type(module) is nn.Linear:
            found[name.replace("._original_component", "")] = module
    return found


def _safe(name: str) -> str:
    return name.replace(".", "__")


class LoRA(nn.Module):
    """Rank-r deltas for a set of named linear layers (names as Hugging Face writes them)."""

    def __init__(
        self, shapes: dict[str, tuple[int, int]], rank: int = 8, alpha: float = 16.0, seed: int = 0
    ):
        super().__init__()
        if not shapes:
            raise LoRAError("a LoRA needs at least one target layer")
        if isinstance(rank, bool) or not isinstance(rank, Integral):
            raise LoRAError(f"rank must be an int, got {rank!r}: pass e.g. rank=8")
        if isinstance(alpha, bool) or not isinstance(alpha, Real) or not math.isfinite(alpha):
            raise LoRAError(f"alpha must be a finite number, got {alpha!r}: pass e.g. alpha=16.0")
        self.rank = int(rank)
        self.alpha = float(alpha)
        self.shapes = {name: (int(i), int(o)) for name, (i, o) in shapes.items()}
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            self.deltas = nn.ModuleDict(
                {_safe(n): LoRADelta(i, o, self.rank, self.alpha) for n, (i, o) in shapes.items()}
            )
        finally:
            torch.random.set_rng_state(generator_state)

    @classmethod
    def for_model(
        cls,
        model,
        modules: Sequence[str] = ("q_proj", "v_proj"),
        layers: Sequence[int] | None = None,
        rank: int = 8,
        alpha: float = 16.0,
        seed: int = 0,
    ) -> LoRA:
        """Target the linear layers whose name ends in one of `modules` in the chosen layers."""
        if isinstance(modules, str):
            raise LoRAError(f"modules must be a list of names: pass [{modules!r}] for one")
        available = linear_modules(model)
        n_layers = int(model.cfg.n_layers)
        layers = list(range(n_layers)) if layers is None else list(layers)
        for layer in layers:
            if not 0 <= layer < n_layers:
                raise LoRAError(f"layer {layer} is out of range: this model has 0..{n_layers - 1}")
        shapes = {}
        for short in modules:
            matches = {
                name: module
                for name, module in available.items()
                if name.endswith("." + short)
                and (m := re.search(r"layers\.(\d+)\.", name))
                and int(m.group(1)) in layers
            }
            if not matches:
                endings = sorted({n.rsplit(".", 1)[-1] for n in available})
                raise LoRAError(
                    f"no linear layer named *.{short} in layers {layers}; this model has: "
                    f"{', '.join(endings)}"
                )
            for name, module in matches.items():
                shapes[name] = (module.in_features, module.out_features)
        return cls(shapes, rank=rank, alpha=alpha, seed=seed)

    def delta(self, name: str) -> LoRADelta:
        return self.deltas[_safe(name)]

    def check(self, model) -> dict[str, nn.Linear]:
        """The model's layers this LoRA targets; a missing layer or a shape mismatch is an error."""
        available = linear_modules(model)
        targets = {}
        for name, (d_in, d_out) in self.shapes.items():
            if name not in available:
                raise LoRAError(
                    f"this model has no linear layer {name!r}; the LoRA was made for another "
                    f"architecture (list them with interp.interventions.lora.linear_modules)"
                )
            module = available[name]
            if (module.in_features, module.out_features) != (d_in, d_out):
                raise LoRAError(
                    f"{name} maps {module.in_features} -> {module.out_features} on this model but "
                    f"the LoRA expects {d_in} -> {d_out}; it was made for another model"
                )
            targets[name] = module
        return targets

    @contextlib.contextmanager
    def applied(self, model) -> Iterator[LoRA]:
        """Add the deltas to the chosen layers' outputs for the duration of the block."""
        targets = self.check(model)
        device = next(model.parameters()).device
        self.to(device)
        handles = []
        try:
            for name, module in targets.items():
                delta = self.delta(name)

                def hook(_module, inputs, output, delta=delta):
                    return output + delta(inputs[0])

                handles.append(module.register_forward_hook(hook))
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def config(self) -> dict[str, Any]:
        """What rebuilds this LoRA's shape: rank, alpha and the target layers' shapes."""
        return {
            "rank": self.rank,
            "alpha": self.alpha,
            "modules": {name: list(shape) for name, shape in self.shapes.items()},
        }


def save_lora(directory: str | os.PathLike, lora: LoRA, **meta: Any) -> Path:
    """Write a "lora" folder (config: shapes, rank, alpha; `meta`: e.g. model name) atomically."""
    return save_folder(directory, KIND, config=lora.config(), meta=meta, tensors=lora.state_dict())


def load_lora(directory: str | os.PathLike, model=None) -> LoRA:
    """Rebuild a saved LoRA; with `model`, check every target layer and shape against it first."""
    directory = Path(directory)
    try:
        stored = load_folder(directory, KIND)
        check_keys(stored.config, CONFIG_KEYS, f"the config of {directory}")
    except StorageError as error:
        raise LoRAError(str(error)) from error
    config = stored.config
    shapes = {name: tuple(shape) for name, shape in config["modules"].items()}
    lora = LoRA(shapes, rank=config["rank"], alpha=config["alpha"])
    try:
        lora.load_state_dict(stored.tensors, strict=True)
    except RuntimeError as error:
        raise LoRAError(f"the LoRA in {directory} does not load: {error}") from error
    if model is not None:
        lora.check(model)
    return lora


@torch.no_grad()
def merge_lora(model, lora: LoRA) -> None:
    """Add the LoRA's low-rank products into the targeted weights (W += up @ down * alpha / rank),
    so the model runs as a plain model with no hook to keep attached; the product is formed in
    float32 and cast to the weights' dtype."""
    for name, module in lora.check(model).items():
        delta = lora.delta(name)
        product = (delta.up.float() @ delta.down.float()) * delta.scaling
        module.weight += product.to(device=module.weight.device, dtype=module.weight.dtype)
