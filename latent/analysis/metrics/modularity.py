"""Modularity and explicitness (Ridgeway & Mozer, 2018; disentanglement_lib `modularity_explicitness.py`)."""

from __future__ import annotations

import warnings

import numpy as np

from latent.analysis.metrics.utils import (
    NUM_BINS,
    as_codes,
    as_factors,
    check_pair,
    check_varying,
    discrete_mutual_info,
    histogram_discretize,
)
from latent.errors import DataError


def modularity_from_mi(mutual_information: np.ndarray) -> float:
    """Mean over latents of 1 − (Σ_f m² − max_f m²) / (max_f m² · (n_factors − 1)); 0 for a latent with no MI."""
    squared = np.square(mutual_information)
    top = np.max(squared, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - (np.sum(squared, axis=1) - top) / (top * (squared.shape[1] - 1.0))
    score[top == 0.0] = 0.0
    return float(np.mean(score))


def _explicitness_auc(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray):
    """ROC-AUC (macro over one-vs-rest class indicators) of `LogisticRegression()` on the train and test rows.

    disentanglement_lib binarises each set's labels on their own classes, which fails when a class is missing
    from one set; here the classes scored are the classifier's that occur in the set (the same when all occur)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression().fit(x_train, y_train)

    def auc(x: np.ndarray, y: np.ndarray) -> float:
        proba = clf.predict_proba(x)
        keep = np.isin(clf.classes_, y)
        indicator = (y[:, None] == clf.classes_[keep][None, :]).astype(np.int64)
        return float(roc_auc_score(indicator, proba[:, keep]))

    return auc(x_train, y_train), auc(x_test, y_test)


def modularity_explicitness(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    num_bins: int = NUM_BINS,
) -> dict[str, float]:
    """Modularity (from the MI of the 20-bin-discretised training codes) and explicitness (ROC-AUC of a logistic
    regression per factor on the codes standardised with the training mean and std, averaged over factors).

    Returns {"modularity", "explicitness_train", "explicitness_test"}."""
    codes_train, factors_train = as_codes(codes_train, "codes_train"), as_factors(factors_train, "factors_train")
    codes_test, factors_test = as_codes(codes_test, "codes_test"), as_factors(factors_test, "factors_test")
    check_pair(codes_train, factors_train, "modularity_explicitness (train)")
    check_pair(codes_test, factors_test, "modularity_explicitness (test)")
    check_varying(factors_train, "modularity_explicitness (train)")
    mi = discrete_mutual_info(histogram_discretize(codes_train, num_bins), factors_train)
    mean, std = codes_train.mean(axis=0), codes_train.std(axis=0)
    if np.any(std == 0):
        raise DataError(f"modularity_explicitness: latent {int(np.flatnonzero(std == 0)[0])} is constant")
    train_norm, test_norm = (codes_train - mean) / std, (codes_test - mean) / std
    per_factor = [
        _explicitness_auc(train_norm, factors_train[:, j], test_norm, factors_test[:, j])
        for j in range(factors_train.shape[1])
    ]
    return {
        "modularity": modularity_from_mi(mi),
        "explicitness_train": float(np.mean([a for a, _ in per_factor])),
        "explicitness_test": float(np.mean([b for _, b in per_factor])),
    }
