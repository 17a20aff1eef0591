"""How separable labelled states are: grouped cross-validated logistic accuracy, and t-SNE maps.

Used by the SEAL thought-state analysis (`interp.analyses.thought_states`) to ask, per layer, how
well the thought class can be read from the hidden state at a thought boundary.
"""

from __future__ import annotations

import math

import numpy as np
from jaxtyping import Float, Int

__all__ = ["separability", "tsne_map"]


def separability(
    x: Float[np.ndarray, "n d"],
    labels: Int[np.ndarray, " n"],
    groups: np.ndarray,
    folds: int,
    seed: int,
    one_class: int,
) -> dict[str, float]:
    """Cross-validated accuracy of a logistic classifier of the label from the state.

    All classes, and `one_class` vs the rest ("binary_*"), each with balanced accuracy (classes
    may be very unequal) and the majority-class baseline. Folds are grouped by `groups` (e.g. the
    response), so no group is on both sides; a class with fewer members than two is left out of
    the all-class fit. NaN where no fit is possible.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def score(y: np.ndarray, keep: np.ndarray) -> tuple[float, float, float, int]:
        y, xs, g = y[keep], x[keep], groups[keep]
        values, sizes = np.unique(y, return_counts=True)
        n_groups = len(np.unique(g))
        k = min(folds, int(sizes.min()) if len(sizes) else 0, n_groups)
        if len(values) < 2 or k < 2:
            return math.nan, math.nan, math.nan, 0
        predicted = np.empty_like(y)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        for train, test in splitter.split(xs, y, g):
            if len(np.unique(y[train])) < 2:
                return math.nan, math.nan, math.nan, 0
            classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
            classifier.fit(xs[train], y[train])
            predicted[test] = classifier.predict(xs[test])
        majority = float(sizes.max() / sizes.sum())
        return (
            float(accuracy_score(y, predicted)),
            float(balanced_accuracy_score(y, predicted)),
            majority,
            len(values),
        )

    present, sizes = np.unique(labels, return_counts=True)
    keep3 = np.isin(labels, present[sizes >= 2])
    acc3, bal3, base3, n_classes = score(labels, keep3)
    binary = (labels != one_class).astype(int)
    acc2, bal2, base2, _ = score(binary, np.ones(len(labels), dtype=bool))
    return {
        "accuracy": acc3,
        "balanced_accuracy": bal3,
        "majority_baseline": base3,
        "classes_fitted": n_classes,
        "binary_accuracy": acc2,
        "binary_balanced_accuracy": bal2,
        "binary_majority_baseline": base2,
        "n_points": int(len(labels)),
    }


def tsne_map(x: Float[np.ndarray, "n d"], perplexity: float, seed: int) -> Float[np.ndarray, "n 2"]:
    """2-D t-SNE (scikit-learn) after PCA to at most 50 dimensions; perplexity capped for few points."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(x)
    if n < 5:
        return np.full((n, 2), np.nan)
    x = np.asarray(x, dtype=np.float64)  # float64 copies on purpose, in any model dtype
    if not np.isfinite(x).all() or not (x.max(axis=0) > x.min(axis=0)).any():
        # identical points (e.g. one token's embedding at layer 0) have no map, and scikit-learn's
        # Barnes-Hut t-SNE crashes the process on the NaNs their PCA start gives
        return np.full((n, 2), np.nan)
    reduced = PCA(n_components=min(50, n, x.shape[1]), random_state=seed).fit_transform(x)
    perplexity = min(perplexity, (n - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        reduced
    )
