"""What an edit does to an activation: small torch modules, one per method.

Each takes the activation at a hook, shape [batch, pos, width], and returns the edited activation
of the same shape. They hold their parameters (trainable or not) and can describe themselves as a
JSON config so a checkpoint can rebuild them (see `interp.interventions.serialization`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor, nn


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
        if isinstance(vector, int):
            vector = torch.zeros(vector)
        self.register_buffer("vector", vector.detach().clone().float())
        self.alpha = float(alpha)

    @property
    def width(self) -> int:
        return self.vector.shape[-1]

    def forward(self, h: Float[Tensor, "batch pos width"]) -> Float[Tensor, "batch pos width"]:
        return h + self.alpha * self.vector.to(h.dtype)

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
        if isinstance(direction, int):
            direction = torch.ones(direction)
        norm = direction.float().norm()
        if norm == 0:
            raise ValueError("PushAlong needs a non-zero direction")
        self.register_buffer("direction", (direction.float() / norm).detach().clone())
        self.amount = amount
        self.unit = float(unit)

    @property
    def width(self) -> int:
        return self.direction.shape[-1]

    def forward(self, h: Float[Tensor, "batch pos width"]) -> Float[Tensor, "batch pos width"]:
        amount = torch.as_tensor(self.amount, dtype=h.dtype, device=h.device)
        if amount.ndim == 1:
            if amount.shape[0] != h.shape[0]:
                raise ValueError(
                    f"PushAlong has {amount.shape[0]} amounts for a batch of {h.shape[0]}"
                )
            amount = amount[:, None, None]
        return h + amount * self.unit * self.direction.to(h.dtype)

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


class RED(EditFunction):
    """Representation editing: h * scale + bias, elementwise (scale starts at 1, bias at 0)."""

    kind: ClassVar[str] = "red"

    def __init__(self, width: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))

    @property
    def width(self) -> int:
        return self.scale.shape[0]

    def forward(self, h: Float[Tensor, "batch pos width"]) -> Float[Tensor, "batch pos width"]:
        return h * self.scale.to(h.dtype) + self.bias.to(h.dtype)

    @classmethod
    def random(cls, width: int, bias_norm: float, scale_std: float = 0.0, seed: int = 0) -> RED:
        """A RED with a random bias of L2 norm `bias_norm` (and scale 1 + noise): an untrained stand-in."""
        generator = torch.Generator().manual_seed(seed)
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
    if not 0 < rank <= width:
        raise ValueError(f"rank must be in 1..{width}, got {rank}")


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
        R = self.rotation.weight.to(h.dtype)  # [rank, width], orthonormal rows
        target = self.learned_source(h.to(self.learned_source.weight.dtype)).to(h.dtype)
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
        dtype = self.learned_source.weight.dtype
        return h + self.project_back(self.learned_source(h.to(dtype))).to(h.dtype)


EDIT_FUNCTIONS: dict[str, type[EditFunction]] = {
    cls.kind: cls for cls in (AddVector, PushAlong, RED, LoReFT, DiReFT)
}
