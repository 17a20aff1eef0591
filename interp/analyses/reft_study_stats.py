"""Paired comparisons of two arms on the same problems, and what a number of problems can detect.

Used by the ReFT study (`interp.analyses.reft_study`) to set every arm beside the base model:

    paired_comparison(base_correct, arm_correct)   # difference, paired bootstrap CI, McNemar p
    detectable_difference(200, 0.26)               # smallest difference 200 problems can detect
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats


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
        float(stats.binomtest(min(base_only, arm_only), discordant, 0.5).pvalue)
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
    z_a = stats.norm.ppf(1 - alpha / 2)
    z_b = stats.norm.ppf(power)
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
