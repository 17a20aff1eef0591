"""SEAL steering vectors: mean state of one set of thought classes minus that of another, per layer.

    vector = SteeringVector.from_class_stats(sums, counts, layers)      # execution - (reflection + transition)
    edit = vector.edit(model, layer=12, alpha=1.0, span="think")         # add at boundaries inside the span
    vector.save("runs/seal/vector"); SteeringVector.load("runs/seal/vector")

Saved as a "steering_vector" folder of the one on-disk format (`interp.storage`). Conventions,
saved with every vector (`describe()`):
- sign: the vector points from the `away` classes to the `toward` classes,
  mean(toward) - mean(away). With the default (toward execution, away from reflection and
  transition) a positive alpha steers toward execution, i.e. fewer reflections and transitions.
  (The code of the SEAL paper, arXiv 2504.07986, stores mean(reflection + transition) -
  mean(execution) and applies it with coefficient -1; alpha = +1 here is that same edit.)
- pooling: "samples" (SEAL) averages every boundary of the `away` classes together, so the more
  frequent class weighs more; "classes" averages the per-class means, each class weighing the same.
- normalization: "none" (SEAL: the raw difference, alpha scales it) or "unit" (unit length, so
  alpha is a length in the residual stream).
- site: `blocks.L.hook_resid_pre`, the input of block L (Hugging Face `hidden_states[L]`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interp.interventions import AddVector, Edit
from interp.storage import check_keys, load_folder, save_folder
from interp.text.thoughts import CLASSES, EXECUTION, REFLECTION, TRANSITION, steering_positions

POOLINGS = ("samples", "classes")
NORMALIZATIONS = ("none", "unit")
SITE = "hook_resid_pre"
KIND = "steering_vector"
CONFIG_KEYS = ("layers", "toward", "away", "pooling", "normalization", "counts")

# The vectors SEAL's study compares: the pooled one and those that leave one class out.
VARIANTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pooled": ((EXECUTION,), (REFLECTION, TRANSITION)),
    "reflection_only": ((EXECUTION,), (REFLECTION,)),
    "transition_only": ((EXECUTION,), (TRANSITION,)),
}


@dataclass
class SteeringVector:
    """One vector per layer, with how it was made (sign, pooling, normalization, counts)."""

    vectors: Float[Tensor, "layer d"]
    layers: tuple[int, ...]
    toward: tuple[str, ...] = (EXECUTION,)
    away: tuple[str, ...] = (REFLECTION, TRANSITION)
    pooling: str = "samples"
    normalization: str = "none"
    counts: dict[str, int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers = tuple(int(layer) for layer in self.layers)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.layers):
            raise ValueError(
                f"vectors must be [layer, d] with one row per layer {self.layers}, "
                f"got shape {tuple(self.vectors.shape)}"
            )
        if not bool(torch.isfinite(self.vectors).all()):
            bad = [
                layer for layer, v in zip(self.layers, self.vectors) if not torch.isfinite(v).all()
            ]
            raise ValueError(
                f"the steering vectors of layers {bad} hold NaN or inf values: recompute them "
                f"from class statistics with boundaries of every class"
            )
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}"
            )

    @property
    def sign(self) -> str:
        return f"mean({'+'.join(self.toward)}) - mean({'+'.join(self.away)})"

    @classmethod
    def from_class_stats(
        cls,
        sums: Float[Tensor, "layer n_class d"],
        counts: dict[str, int],
        layers: tuple[int, ...],
        *,
        toward: tuple[str, ...] = (EXECUTION,),
        away: tuple[str, ...] = (REFLECTION, TRANSITION),
        pooling: str = "samples",
        normalization: str = "none",
        classes: tuple[str, ...] = CLASSES,
        meta: dict[str, Any] | None = None,
    ) -> SteeringVector:
        """mean(toward) - mean(away) from per-class sums of states and per-class counts."""
        for name in (*toward, *away):
            if name not in classes:
                raise ValueError(f"unknown thought class {name!r}; classes: {classes}")
        for side in (toward, away):
            # pooled samples need one boundary on each side; a mean of class means needs every class
            groups = [(name,) for name in side] if pooling == "classes" else [side]
            for names in groups:
                if sum(counts.get(name, 0) for name in names) == 0:
                    raise ValueError(
                        f"no {' or '.join(names)} thoughts among the boundaries ({counts}): this "
                        f"vector cannot be made; generate more responses, or choose classes that occur"
                    )
        sums = sums.double()
        toward_mean = _pooled_mean(sums, counts, toward, classes, pooling)
        away_mean = _pooled_mean(sums, counts, away, classes, pooling)
        vectors = toward_mean - away_mean
        if normalization == "unit":
            norms = vectors.norm(dim=-1, keepdim=True)
            zero = [layer for layer, n in zip(layers, norms[:, 0]) if n == 0]
            if zero:
                # Equal means (e.g. layer 0, where every boundary state is the same token's
                # embedding) have no direction: the vector stays zero there, so steering is a no-op.
                warnings.warn(
                    f"the mean states of {toward} and {away} are equal at layers {zero}: the "
                    f"difference has no direction, so the vector is zero there and steering at "
                    f"those layers changes nothing",
                    stacklevel=2,
                )
            vectors = vectors / norms.clamp(min=torch.finfo(norms.dtype).tiny)
        return cls(
            vectors=vectors.float(),
            layers=tuple(layers),
            toward=tuple(toward),
            away=tuple(away),
            pooling=pooling,
            normalization=normalization,
            counts={name: int(counts.get(name, 0)) for name in (*toward, *away)},
            meta=dict(meta or {}),
        )

    def vector(self, layer: int) -> Float[Tensor, " d"]:
        if layer not in self.layers:
            raise ValueError(f"no vector at layer {layer}; this one has layers {self.layers}")
        return self.vectors[self.layers.index(layer)]

    def norms(self) -> dict[int, float]:
        return {layer: float(v.norm()) for layer, v in zip(self.layers, self.vectors)}

    def edit(
        self,
        model,
        layer: int,
        alpha: float,
        span: str = "think",
        open_text: str = "<think>",
        close_text: str = "</think>",
    ) -> Edit:
        """Add alpha * vector at `blocks.{layer}.hook_resid_pre` on boundary tokens inside the span."""
        return Edit(
            f"blocks.{layer}.{SITE}",
            AddVector(self.vector(layer), alpha=alpha),
            steering_positions(model.tokenizer, span, open_text, close_text),
        )

    def describe(self) -> dict[str, Any]:
        """Everything but the tensors: sign, pooling, normalization, counts, norms, site."""
        return {
            "layers": list(self.layers),
            "toward": list(self.toward),
            "away": list(self.away),
            "sign": self.sign,
            "positive_alpha_steers_toward": list(self.toward),
            "pooling": self.pooling,
            "normalization": self.normalization,
            "counts": self.counts,
            "norms": {str(k): v for k, v in self.norms().items()},
            "site": f"blocks.L.{SITE} (Hugging Face hidden_states[L])",
            "meta": self.meta,
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """Write a "steering_vector" folder atomically: how it was made under `config`, its own
        `meta` plus a readable `description` (sign, norms, site) under `meta`."""
        if "description" in self.meta:
            raise ValueError("a steering vector's meta cannot use the key 'description'")
        described = self.describe()
        config = {key: described.pop(key) for key in CONFIG_KEYS}
        meta = {**described.pop("meta"), "description": described}
        return save_folder(
            directory, KIND, config=config, meta=meta, tensors={"vectors": self.vectors}
        )

    @classmethod
    def load(cls, directory: str | os.PathLike) -> SteeringVector:
        """Read a vector written by `save`; another kind or a broken folder is a clear error."""
        stored = load_folder(directory, KIND)
        check_keys(stored.config, CONFIG_KEYS, f"the config of {directory}")
        check_keys(stored.tensors, ("vectors",), f"the tensors of {directory}")
        meta = {key: value for key, value in stored.meta.items() if key != "description"}
        return cls(
            vectors=stored.tensors["vectors"],
            layers=tuple(stored.config["layers"]),
            toward=tuple(stored.config["toward"]),
            away=tuple(stored.config["away"]),
            pooling=stored.config["pooling"],
            normalization=stored.config["normalization"],
            counts=stored.config["counts"],
            meta=meta,
        )


def _pooled_mean(
    sums: Float[Tensor, "layer n_class d"],
    counts: dict[str, int],
    names: tuple[str, ...],
    classes: tuple[str, ...],
    pooling: str,
) -> Float[Tensor, "layer d"]:
    index = [classes.index(name) for name in names]
    if pooling == "samples":
        total = sum(counts[name] for name in names)
        return sums[:, index].sum(1) / total
    if pooling == "classes":
        means = [sums[:, i] / counts[name] for i, name in zip(index, names)]  # all present
        return torch.stack(means).mean(0)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
