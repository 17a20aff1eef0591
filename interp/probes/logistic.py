"""Logistic probes of a label from activations, one per layer (or per head), held out by group.

    fit = fit_logistic_probes(features, labels, groups, seed=0)   # features [probe, n, d]
    fit.accuracy, fit.auc                                          # held-out, one per probe
    fit.decision(new_features)                                     # logits on raw activations

Features are standardised on the training rows (scikit-learn's StandardScaler) before
LogisticRegression; the scaling is folded back into `weights` / `intercepts`, so a probe is a plain
affine map of the raw activation (what token-by-token scoring and direction analyses need). The
held-out split is by *group* (e.g. the question a sample came from), so no group sits on both
sides; the inverse regularisation C is chosen per probe by group k-fold cross-validation on the
training rows. Two labels give one weight vector per probe; more give one per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.preprocessing import StandardScaler
from torch import Tensor

DEFAULT_CS = (0.001, 0.01, 0.1, 1.0)


@dataclass
class LogisticProbeFit:
    """Probes (one per row of the features' first axis) and their held-out quality."""

    weights: Float[Tensor, "probe ..."]  # [probe, d] for two labels, [probe, k, d] for k
    intercepts: Float[Tensor, "probe ..."]  # [probe] for two labels, [probe, k] for k
    classes: np.ndarray
    accuracy: Float[Tensor, " probe"]  # held out
    auc: Float[Tensor, " probe"]  # held out (one-vs-rest macro average for more than two labels)
    train_accuracy: Float[Tensor, " probe"]
    C: Float[Tensor, " probe"]
    train: np.ndarray
    test: np.ndarray
    test_scores: Float[Tensor, "probe n_test *classes"]  # decision values on the held-out rows

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2

    def decision(self, features: Float[Tensor, "probe n d"]) -> Tensor:
        """Decision values (logits of the second class for two labels) on raw activations."""
        if self.binary:
            return (
                torch.einsum("pnd,pd->pn", features.float(), self.weights)
                + self.intercepts[:, None]
            )
        return (
            torch.einsum("pnd,pkd->pnk", features.float(), self.weights) + self.intercepts[:, None]
        )


def group_split(groups: Sequence, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train / held-out row indices with every group wholly on one side."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    groups = np.asarray(groups)
    unique = np.unique(groups)
    if len(unique) < 2:
        raise ValueError(
            f"a held-out split by group needs at least two groups, got {len(unique)}; "
            f"give more questions"
        )
    order = np.random.default_rng(seed).permutation(len(unique))
    n_test = min(len(unique) - 1, max(1, int(round(len(unique) * test_fraction))))
    held_out = set(unique[order[:n_test]].tolist())
    is_test = np.array([g in held_out for g in groups.tolist()])
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def fit_logistic_probes(
    features: Float[Tensor, "probe n d"],
    labels: Sequence[int] | np.ndarray,
    groups: Sequence | np.ndarray | None = None,
    seed: int = 0,
    test_fraction: float = 0.25,
    Cs: Sequence[float] = DEFAULT_CS,
    cv_folds: int = 3,
    max_iter: int = 2000,
) -> LogisticProbeFit:
    """Fit one logistic probe per row of `features` on a split held out by `groups` (each sample
    its own group when None) and score it on the held-out rows."""
    if features.ndim != 3:
        raise ValueError(
            f"features must be [probe, n, d] (e.g. [layer, sample, d_model]), got shape "
            f"{tuple(features.shape)}; add a leading axis for a single probe"
        )
    labels = np.asarray(labels)
    n = features.shape[1]
    if labels.shape != (n,):
        raise ValueError(f"{len(labels)} labels for {n} samples: give one label per sample")
    groups = np.arange(n) if groups is None else np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"{len(groups)} groups for {n} samples: give one group per sample")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"every sample has label {classes.tolist()}: a probe needs two labels")
    train, test = group_split(groups, test_fraction, seed)
    for side, rows in (("training", train), ("held-out", test)):
        missing = set(classes.tolist()) - set(labels[rows].tolist())
        if missing:
            raise ValueError(
                f"the {side} split has no sample labelled {sorted(missing)}; give more groups "
                f"or change the seed / test_fraction"
            )
    n_folds = min(cv_folds, len(np.unique(groups[train])))
    weights, intercepts, accuracy, auc, train_accuracy, chosen, scores = [], [], [], [], [], [], []
    for probe_features in features:
        x = probe_features.double().numpy()  # fitted on float64 copies on purpose, in any dtype
        scaler = StandardScaler().fit(x[train])
        x_train, x_test = scaler.transform(x[train]), scaler.transform(x[test])
        classifier = LogisticRegression(max_iter=max_iter)
        if len(Cs) > 1 and n_folds >= 2:
            search = GridSearchCV(
                classifier,
                {"C": list(Cs)},
                cv=GroupKFold(n_splits=n_folds),
                scoring="accuracy",
            )
            search.fit(x_train, labels[train], groups=groups[train])
            classifier = search.best_estimator_
        else:
            classifier.set_params(C=Cs[0]).fit(x_train, labels[train])
        decision = classifier.decision_function(x_test)
        accuracy.append(float((classifier.predict(x_test) == labels[test]).mean()))
        train_accuracy.append(float((classifier.predict(x_train) == labels[train]).mean()))
        if len(classes) == 2:
            auc.append(float(roc_auc_score(labels[test] == classes[1], decision)))
        else:
            auc.append(
                float(
                    roc_auc_score(
                        labels[test],
                        classifier.predict_proba(x_test),
                        multi_class="ovr",
                        labels=classes,
                    )
                )
            )
        # Fold the standardisation into the probe: w.(x - mu)/sigma + b = (w/sigma).x + b - w.mu/sigma
        coef = classifier.coef_ / scaler.scale_  # [1 or k, d]
        bias = classifier.intercept_ - coef @ scaler.mean_
        weights.append(torch.from_numpy(coef[0] if len(classes) == 2 else coef).float())
        intercepts.append(
            torch.from_numpy(np.asarray(bias[0] if len(classes) == 2 else bias)).float()
        )
        chosen.append(float(classifier.C))
        scores.append(torch.from_numpy(np.asarray(decision)).float())
    return LogisticProbeFit(
        weights=torch.stack(weights),
        intercepts=torch.stack(intercepts),
        classes=classes,
        accuracy=torch.tensor(accuracy),
        auc=torch.tensor(auc),
        train_accuracy=torch.tensor(train_accuracy),
        C=torch.tensor(chosen),
        train=train,
        test=test,
        test_scores=torch.stack(scores),
    )
