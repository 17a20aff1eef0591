"""What an edit does to an activation: small torch modules, one per method.

Each takes the activation at a hook, shape [batch, pos, width], and returns the edited activation
of the same shape. They hold their parameters (trainable or not) and can describe themselves as a
JSON config so a checkpoint can rebuild them (see `interp.interventions.serialization`).
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor, nn


class EditError(ValueError):
    """An edit that cannot be built or applied to this model; the message says what to change."""


def check_width(width: object, what: str) -> int:
    """A positive int width, or a clear error."""
    if isinstance(width, bool) or not isinstance(width, Integral) or width < 1:
        raise EditError(
            f"{what} needs a width that is a positive int (the activation's last axis, e.g. "
            f"model.cfg.d_model), got {width!r}"
        )
    return int(width)


def check_number(value: object, what: str, example: str) -> float:
    """A finite real number (not a bool), or a clear error."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise EditError(f"{what} must be a finite number, got {value!r}: pass e.g. {example}")
    return float(value)


def check_vector(value: object, what: str) -> Float[Tensor, " width"]:
    """A 1-D, non-empty, finite float tensor (lists and arrays are converted), or a clear error."""
    try:
        vector = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise EditError(
            f"{what} must be a 1-D tensor of numbers, got {type(value).__name__}"
        ) from error
    if vector.ndim != 1 or vector.numel() == 0:
        hint = (
            " (take one row: vector[i], or vector.squeeze(0) for shape (1, d))"
            if vector.ndim > 1
            else ""
        )
        raise EditError(
            f"{what} must be a 1-D tensor of shape (width,), got shape {tuple(vector.shape)}{hint}"
        )
    if vector.is_complex():
        raise EditError(f"{what} must hold real numbers, got dtype {vector.dtype}")
    vector = vector.detach().float()
    if not bool(torch.isfinite(vector).all()):
        raise EditError(
            f"{what} holds NaN or inf values: recompute it (a mean over no samples, or a division "
            f"by a zero norm, gives NaN)"
        )
    return vector


class EditFunction(nn.Module):
    """Base class: a function of the activation with a known width and a JSON config."""

    kind: ClassVar[str]

    @property
    def width(self) -> int:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Everything besides the tensors that is needed to rebuild this function."""
        return {"kind": self.kind, "width": self.width}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EditFunction:
        """An instance with the right shapes; tensors come from the state dict afterwards."""
        return cls(config["width"])


class AddVector(EditFunction):
    """h + alpha * vector: steering vectors (SEAL) and any fixed offset."""

    kind: ClassVar[str] = "add_vector"

    def __init__(self, vector: Float[Tensor, " width"] | int, alpha: float = 1.0):
        super().__init__()
        if isinstance(vector, Integral) and not isinstance(vector, bool):
            vector = torch.zeros(check_width(vector, "AddVector"))
        self.register_buffer("vector", check_vector(vector, "AddVector's vector").clone())
        self.alpha = check_number(alpha, "AddVector's alpha", "alpha=1.0")

    @property
    def width(self) -> int:
        return self.vector.shape[-1]

    def forward(self, h: Float[Tensor, "batch pos width"]) -> Float[Tensor, "batch pos width"]:
        # the vector is scaled in float32 and cast once to the activation's dtype
        return h + (self.alpha * self.vector).to(h.dtype)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "alpha": self.alpha}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AddVector:
        return cls(config["width"], alpha=config.get("alpha", 1.0))


class PushAlong(EditFunction):
    """h + amount * unit * d/|d|: push `amount` units along a direction.

    `unit` converts the amount into residual-stream length (for a probe, the length of one
    probe unit). `amount` may be a scalar or one value per sequence of the batch, so a sweep over
    strengths runs as one batched forward.
    """

    kind: ClassVar[str] = "push_along"

    def __init__(
        self,
        direction: Float[Tensor, " width"] | int,
        amount: float | Float[Tensor, " batch"] = 1.0,
        unit: float = 1.0,
    ):
        super().__init__()
        if isinstance(direction, Integral) and not isinstance(direction, bool):
            direction = torch.ones(check_width(direction, "PushAlong"))
        direction = check_vector(direction, "PushAlong's direction")
        norm = direction.norm()
        if not bool(torch.isfinite(norm)) or norm == 0:
            raise EditError(
                f"PushAlong needs a direction of non-zero, finite length, got length {float(norm)}: "
                f"pass the probe's weight vector (or any non-zero vector; it is normalised here)"
            )
        self.register_buffer("direction", (direction / norm).clone())
        self.amount = _check_amount(amount)
        self.unit = check_number(unit, "PushAlong's unit", "unit=1.0")

    @property
    def width(self) -> int:
        return self.direction.shape[-1]

    def forward(self, h: Float[Tensor, "batch pos width"]) -> Float[Tensor, "batch pos width"]:
        # the push is built in float32 and cast once to the activation's dtype, so a bfloat16
        # model gets the float32 push rounded once (not a rounded amount times a rounded unit)
        amount = torch.as_tensor(self.amount, dtype=torch.float32, device=h.device)
        if amount.ndim == 1:
            if amount.shape[0] != h.shape[0]:
                raise EditError(
                    f"PushAlong has {amount.shape[0]} amounts for a batch of {h.shape[0]} "
                    f"sequences: give one amount per sequence, or a single number for all"
                )
            amount = amount[:, None, None]
        return h + (amount * self.unit * self.direction.float()).to(h.dtype)

    def config(self) -> dict[str, Any]:
        amount = self.amount
        if isinstance(amount, Tensor):
            amount = amount.tolist()
        return {**super().config(), "amount": amount, "unit": self.unit}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PushAlong:
        amount = config.get("amount", 1.0)
        if isinstance(amount, list):
            amount = torch.tensor(amount)
        return cls(config["width"], amount=amount, unit=config.get("unit", 1.0))


def _check_amount(amount: object) -> float | Tensor:
    """A finite scalar, or a finite 1-D tensor of one amount per sequence."""
    if isinstance(amount, Tensor) and amount.ndim > 0:
        if amount.ndim != 1 or not bool(torch.isfinite(amount.float()).all()):
            raise EditError(
                f"PushAlong's amount must be a number or a 1-D tensor of finite numbers (one per "
                f"sequence of the batch), got shape {tuple(amount.shape)}"
                + ("" if amount.ndim != 1 else " holding NaN or inf")
            )
        return amount
    if isinstance(amount, Tensor):
        amount = amount.item()
    return check_number(amount, "PushAlong's amount", "amount=1.0, or a 1-D tensor per sequence")


class RED(EditFunction):
    """Representation editing: h * scale + bias, elementwise (scale starts at 1, bias at 0)."""

    kind: ClassVar[str] = "red"

    def __init__(self, width: int):
        super().__init__()
        width = check_width(width, "RED")
        self.scale = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))

    @property
    def width(self) -> int:
        return self.scale.shape[0]

    def forward(self, h: Float[Tensor, "batch pos width"]) -> Float[Tensor, "batch pos width"]:
        # float32 parameters cast to the activation's dtype, never the activation to theirs
        return h * self.scale.to(h.dtype) + self.bias.to(h.dtype)

    @classmethod
    def random(cls, width: int, bias_norm: float, scale_std: float = 0.0, seed: int = 0) -> RED:
        """A RED with a random bias of L2 norm `bias_norm` (and scale 1 + noise): an untrained stand-in."""
        bias_norm = check_number(bias_norm, "RED.random's bias_norm", "bias_norm=1.0")
        scale_std = check_number(scale_std, "RED.random's scale_std", "scale_std=0.0")
        if bias_norm < 0 or scale_std < 0:
            raise EditError(
                f"RED.random needs bias_norm >= 0 and scale_std >= 0 (they are a length and a "
                f"spread), got bias_norm={bias_norm}, scale_std={scale_std}"
            )
        if isinstance(seed, bool) or not isinstance(seed, Integral):
            raise EditError(f"RED.random's seed must be an int, got {seed!r}")
        generator = torch.Generator().manual_seed(int(seed))
        edit = cls(width)
        with torch.no_grad():
            bias = torch.randn(width, generator=generator)
            edit.bias.copy_(bias / bias.norm() * bias_norm)
            edit.scale.add_(scale_std * torch.randn(width, generator=generator))
        return edit


class _LowRankEdit(EditFunction):
    """Shared shape bookkeeping of the rank-r ReFT edits: width and rank from `learned_source`."""

    learned_source: nn.Linear

    @property
    def width(self) -> int:
        return self.learned_source.in_features

    @property
    def rank(self) -> int:
        return self.learned_source.out_features

    def config(self) -> dict[str, Any]:
        return {**super().config(), "rank": self.rank}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EditFunction:
        return cls(config["width"], config["rank"])


def _check_rank(width: int, rank: int) -> None:
    check_width(width, "a low-rank edit")
    if isinstance(rank, bool) or not isinstance(rank, Integral) or not 0 < rank <= width:
        raise EditError(f"rank must be an int in 1..{width} (the width), got {rank!r}")


def _linear_in(layer: nn.Linear, h: Tensor) -> Tensor:
    """`layer(h)` computed in h's dtype: the layer's weights are cast, h is left as it is."""
    bias = None if layer.bias is None else layer.bias.to(h.dtype)
    return nn.functional.linear(h, layer.weight.to(h.dtype), bias)


class LoReFT(_LowRankEdit):
    """LoReFT: h + R^T (W h + b - R h), with R (rank x width) kept with orthonormal rows."""

    kind: ClassVar[str] = "loreft"

    def __init__(self, width: int, rank: int):
        super().__init__()
        _check_rank(width, rank)
        rotation = nn.Linear(width, rank, bias=False)
        self.rotation = nn.utils.parametrizations.orthogonal(rotation)
        self.learned_source = nn.Linear(width, rank)

    def forward(self, h: Float[Tensor, "batch pos width"]) -> Float[Tensor, "batch pos width"]:
        # Parameters (float32 master copies) are cast to the activation's dtype, never the
        # activation to theirs: a bfloat16 model computes the edit in bfloat16.
        R = self.rotation.weight.to(h.dtype)  # [rank, width], orthonormal rows
        target = _linear_in(self.learned_source, h)
        return h + (target - h @ R.T) @ R


class DiReFT(_LowRankEdit):
    """DiReFT: h + R^T (W h + b) with R unconstrained; LoReFT without orthogonality or subtraction."""

    kind: ClassVar[str] = "direft"

    def __init__(self, width: int, rank: int):
        super().__init__()
        _check_rank(width, rank)
        self.learned_source = nn.Linear(width, rank)
        self.project_back = nn.Linear(rank, width, bias=False)
        nn.init.zeros_(self.project_back.weight)

    def forward(self, h: Float[Tensor, "batch pos width"]) -> Float[Tensor, "batch pos width"]:
        # float32 parameters cast to the activation's dtype (see LoReFT.forward)
        return h + _linear_in(self.project_back, _linear_in(self.learned_source, h))


EDIT_FUNCTIONS: dict[str, type[EditFunction]] = {
    cls.kind: cls for cls in (AddVector, PushAlong, RED, LoReFT, DiReFT)
}
