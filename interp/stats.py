"""Small statistics shared by analyses: binomial intervals, threshold crossings with bootstrap CIs, paired comparisons of two arms and what a number of problems can detect."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats


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


def paired_comparison(
    base: Sequence[bool], arm: Sequence[bool], n_bootstrap: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Arm minus base accuracy on the same problems: the difference, a 95% paired bootstrap
    interval (problems resampled, seeded), and McNemar's exact test on the discordant pairs."""
    a = np.asarray(base, dtype=bool)
    b = np.asarray(arm, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(
            f"paired_comparison needs two equally long, non-empty lists of verdicts on the same "
            f"problems, got {a.shape} and {b.shape}"
        )
    n = len(a)
    difference = float(b.mean() - a.mean())
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_bootstrap, n))
    deltas = b[draws].mean(1) - a[draws].mean(1)
    low, high = np.percentile(deltas, [2.5, 97.5]) if n_bootstrap else (math.nan, math.nan)
    base_only = int((a & ~b).sum())  # the arm breaks what the base solves
    arm_only = int((~a & b).sum())  # the arm solves what the base does not
    discordant = base_only + arm_only
    p_value = (
        float(scipy_stats.binomtest(min(base_only, arm_only), discordant, 0.5).pvalue)
        if discordant
        else 1.0
    )
    return {
        "n": n,
        "difference": difference,
        "difference_low": float(low),
        "difference_high": float(high),
        "base_only": base_only,
        "arm_only": arm_only,
        "discordant_share": discordant / n,
        "mcnemar_p": p_value,
    }


def detectable_difference(
    n: int,
    p_base: float,
    discordant_share: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """The smallest true accuracy difference that `n` problems detect with `power` at two-sided
    level `alpha`.

    Unpaired (two independent samples of n): the normal approximation for two proportions around
    `p_base`. Paired (`discordant_share` = share of problems on which the arms disagree): McNemar's
    test, n = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2 / d^2, solved for d.
    """
    if n < 1 or not 0 <= p_base <= 1:
        raise ValueError(f"need n >= 1 and p_base in [0, 1], got n={n}, p_base={p_base}")
    z_a = scipy_stats.norm.ppf(1 - alpha / 2)
    z_b = scipy_stats.norm.ppf(power)
    if discordant_share is None:
        # at an observed 0 or 1 the binomial spread is 0; one problem's worth keeps it honest
        p = min(max(p_base, 1 / n), 1 - 1 / n) if n > 1 else 0.5
        return float((z_a + z_b) * math.sqrt(2 * p * (1 - p) / n))
    psi = float(discordant_share)
    if not 0 < psi <= 1:
        raise ValueError(f"discordant_share must lie in (0, 1], got {psi}")

    def needed(d: float) -> float:
        return (z_a * math.sqrt(psi) + z_b * math.sqrt(max(psi - d * d, 0.0))) ** 2 / d**2 - n

    top = math.sqrt(psi)
    if needed(top) > 0:  # even the largest difference the discordance allows needs more problems
        return float("nan")
    return float(optimize.brentq(needed, 1e-9, top))


__all__ = ["detectable_difference", "paired_comparison"]
