"""Hold the mean L2 norm of the RED biases near a target with a PID controller.

The controller turns the error between the target and the measured norm into a multiplicative
update of one weight, every `interval` optimizer steps:

    u = kp * e + ki * sum(e) + kd * (e - e_previous)
    weight <- clip(weight * (1 + smoothing * u), min_weight, max_weight)

What the weight does is the controller's *form*:

- "loss_scale" (the form of the BREP study's code, arXiv 2511.10707): the weight multiplies the cross-entropy. The error is
  target - norm, so the loss is scaled down while the norm is too large. Under Adam a constant
  loss scale barely changes the update (Adam divides the gradient by its own running size), so
  this form can do little until the weight is so small that Adam's epsilon matters.
- "penalty": the loss is CE + weight * n * max(0, mean norm - target) over the n RED biases; the
  error is norm - target, so the penalty grows while the norm is too large. Adam normalises the
  *sum* of both gradients, so the penalty's share of each update, and with it the pull on the
  norm, grows with the weight. The hinge matters under Adam: a plain norm penalty keeps pulling
  at full step size below the target whenever the cross-entropy's gradient has faded.
- "lr": the weight multiplies the learning rate (error target - norm): slows the growth of the
  norm when it is too large, but cannot pull it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

FORMS = ("loss_scale", "penalty", "lr")


@dataclass(frozen=True)
class BiasControl:
    """Settings of the bias-norm controller. Defaults of "loss_scale" follow BREP's code."""

    form: Literal["loss_scale", "penalty", "lr"] = "penalty"
    target: float = 0.54
    kp: float = 0.1
    ki: float = 1e-4
    kd: float = 0.01
    smoothing: float = 5.0
    min_weight: float | None = None  # None: the form's default (see `bounds`)
    max_weight: float | None = None
    initial_weight: float | None = None
    interval: int = 4

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"unknown bias-control form {self.form!r}; use one of {FORMS}")
        if self.target <= 0:
            raise ValueError(f"the target norm must be positive, got {self.target}")
        if self.interval < 1:
            raise ValueError(f"interval must be at least 1 step, got {self.interval}")
        low, high = self.bounds
        if not 0 < low <= high:
            raise ValueError(f"weight bounds must satisfy 0 < min <= max, got {low}, {high}")
        if not low <= self.start <= high:
            raise ValueError(f"the initial weight {self.start} lies outside [{low}, {high}]")

    @property
    def bounds(self) -> tuple[float, float]:
        # BREP's code: 1e-5..1e-1 for the loss scale; a penalty and an lr factor need other ranges
        defaults = {"loss_scale": (1e-5, 1e-1), "penalty": (1e-4, 10.0), "lr": (1e-3, 1.0)}[
            self.form
        ]
        return (
            self.min_weight if self.min_weight is not None else defaults[0],
            self.max_weight if self.max_weight is not None else defaults[1],
        )

    @property
    def start(self) -> float:
        defaults = {"loss_scale": 0.1, "penalty": 0.1, "lr": 1.0}
        return self.initial_weight if self.initial_weight is not None else defaults[self.form]


class PIDController:
    """The controller's state: the weight, the running integral and the previous error."""

    def __init__(self, settings: BiasControl):
        self.settings = settings
        self.weight = settings.start
        self.integral = 0.0
        self.previous_error = 0.0
        self.last_update = -1

    def error(self, norm: float) -> float:
        """Positive when the weight should grow."""
        gap = self.settings.target - norm
        return -gap if self.settings.form == "penalty" else gap

    def step(self, step: int, norm: float) -> dict[str, float]:
        """Feed the norm measured after optimizer step `step`; adjust the weight on schedule."""
        s = self.settings
        info = {"weight": self.weight, "updated": 0.0}
        if step - self.last_update < s.interval:
            return info
        error = self.error(norm)
        proportional = s.kp * error
        self.integral += s.ki * error
        derivative = s.kd * (error - self.previous_error)
        signal = proportional + self.integral + derivative
        low, high = s.bounds
        self.weight = min(high, max(low, self.weight * (1.0 + s.smoothing * signal)))
        self.previous_error = error
        self.last_update = step
        return {"weight": self.weight, "updated": 1.0, "signal": signal}

    def state_dict(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "integral": self.integral,
            "previous_error": self.previous_error,
            "last_update": self.last_update,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weight = float(state["weight"])
        self.integral = float(state["integral"])
        self.previous_error = float(state["previous_error"])
        self.last_update = int(state["last_update"])


def bias_norms(functions) -> torch.Tensor:
    """L2 norm of the bias of each RED among `functions` (a 1-D tensor, differentiable)."""
    from interp.interventions.functions import RED

    norms = [f.bias.norm() for f in functions if isinstance(f, RED)]
    if not norms:
        raise ValueError("bias control needs at least one RED edit (others have no bias vector)")
    return torch.stack(norms)
