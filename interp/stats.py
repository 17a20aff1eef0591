"""Small statistics shared by analyses: binomial intervals and threshold crossings with bootstrap CIs."""

from __future__ import annotations

import math

import numpy as np


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (well behaved at 0 and 1)."""
    if total == 0:
        return (float("nan"), float("nan"))
    p = successes / total
    denominator = 1 + z**2 / total
    centre = (p + z**2 / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z**2 / (4 * total**2)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def crossing(xs: np.ndarray, ys: np.ndarray, level: float) -> float:
    """First x where the curve (0, 0), (xs, ys) reaches `level`, linearly interpolated; inf if never.

    The curve starts at (0, 0): with no push, problems the model gets right have no error.
    """
    xs = np.concatenate([[0.0], np.asarray(xs, dtype=float)])
    ys = np.concatenate([[0.0], np.asarray(ys, dtype=float)])
    above = np.nonzero(ys >= level)[0]
    if len(above) == 0:
        return float("inf")
    i = int(above[0])
    if i == 0:
        return 0.0
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0)) if y1 > y0 else float(x1)


def threshold_with_ci(
    magnitudes: np.ndarray,
    errors: np.ndarray,
    level: float,
    n_bootstrap: int = 500,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Strength where the error rate reaches `level`, with a 95% bootstrap interval over problems.

    `errors[k, i]` says whether problem i went wrong at push magnitude `magnitudes[k]` (both signs
    pooled beforehand into one row per magnitude, as rates in [0, 1]).
    """
    errors = np.asarray(errors, dtype=float)
    estimate = crossing(magnitudes, errors.mean(axis=1), level)
    rng = np.random.default_rng(seed)
    n = errors.shape[1]
    draws = [
        crossing(magnitudes, errors[:, rng.integers(0, n, n)].mean(axis=1), level)
        for _ in range(n_bootstrap)
    ]
    if not draws:
        return estimate, float("nan"), float("nan")
    # no interpolation between draws, so draws that never cross (inf) stay inf instead of nan
    low = np.percentile(draws, 2.5, method="lower")
    high = np.percentile(draws, 97.5, method="higher")
    return estimate, float(low), float(high)
