"""Linear probes of a number's value from the residual stream, one per layer.

Ridge regression (scikit-learn's RidgeCV, penalty chosen by efficient leave-one-out on the training
split) of the value or its log2. The probe direction is the unit weight vector; the probe unit is
the residual-stream length along that direction that moves the prediction by one target unit
(1 / |w|), so "push x probe units" means "shift the read-out by x" (by a factor 2**x for log2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from sklearn.linear_model import RidgeCV
from torch import Tensor

TARGETS = ("log2", "value")
ALPHAS = tuple(10.0**k for k in range(-2, 6))


@dataclass
class ProbeFit:
    """Probes for every layer and their held-out quality."""

    weights: Float[Tensor, "layer d"]
    intercepts: Float[Tensor, " layer"]
    r2: Float[Tensor, " layer"]
    pearson: Float[Tensor, " layer"]
    within_1pct: Float[Tensor, " layer"]
    alphas: Float[Tensor, " layer"]

    @property
    def directions(self) -> Float[Tensor, "layer d"]:
        return self.weights / self.weights.norm(dim=-1, keepdim=True)

    @property
    def unit_lengths(self) -> Float[Tensor, " layer"]:
        """Residual length along the direction that moves the prediction by one target unit."""
        return 1.0 / self.weights.norm(dim=-1)


def encode_target(values: np.ndarray, target: str) -> np.ndarray:
    """The regression target: log2(value + 1) (defined at 0) or the value itself."""
    if target == "log2":
        return np.log2(values.astype(np.float64) + 1.0)
    if target == "value":
        return values.astype(np.float64)
    raise ValueError(f"unknown probe target {target!r}; use one of {TARGETS}")


def decode_target(predictions: np.ndarray, target: str) -> np.ndarray:
    return 2.0**predictions - 1.0 if target == "log2" else predictions


def fit_probes(
    acts: Float[Tensor, "layer n d"],
    values: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    target: str = "log2",
) -> ProbeFit:
    """Fit one ridge probe per layer on `train` rows and score it on `test` rows."""
    if len(train) < 2 or len(test) < 2:
        raise ValueError("probes need at least two training and two held-out examples")
    y = encode_target(np.asarray(values), target)
    weights, intercepts, r2, pearson, within, alphas = [], [], [], [], [], []
    for layer_acts in acts:
        x = layer_acts.double().numpy()  # fitted on float64 copies on purpose, in any dtype
        model = RidgeCV(alphas=ALPHAS).fit(x[train], y[train])
        predicted = model.predict(x[test])
        truth = y[test]
        residual = ((truth - predicted) ** 2).sum()
        total = ((truth - truth.mean()) ** 2).sum()
        r2.append(1.0 - residual / total if total > 0 else float("nan"))
        pearson.append(float(np.corrcoef(truth, predicted)[0, 1]))
        value_true = np.asarray(values)[test].astype(np.float64)
        value_pred = decode_target(predicted, target)
        relative = np.abs(value_pred - value_true) / np.maximum(np.abs(value_true), 1.0)
        within.append(float((relative <= 0.01).mean()))
        weights.append(torch.from_numpy(model.coef_).float())
        intercepts.append(float(model.intercept_))
        alphas.append(float(model.alpha_))
    return ProbeFit(
        weights=torch.stack(weights),
        intercepts=torch.tensor(intercepts),
        r2=torch.tensor(r2, dtype=torch.float32),
        pearson=torch.tensor(pearson, dtype=torch.float32),
        within_1pct=torch.tensor(within, dtype=torch.float32),
        alphas=torch.tensor(alphas),
    )


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train / held-out split of n examples."""
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be between 0 and 1")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(2, int(round(n * test_fraction)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])
