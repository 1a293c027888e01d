"""SAP, separated attribute predictability (Kumar et al., 2018; disentanglement_lib `sap_score.py`)."""

from __future__ import annotations

import warnings

import numpy as np

from latent.analysis.metrics.utils import as_codes, as_factors, check_pair, check_varying, need_two_latents


def sap_score_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    continuous_factors: bool = False,
) -> np.ndarray:
    """(n_latents, n_factors): for discrete factors the test accuracy of `LinearSVC(C=0.01,
    class_weight="balanced")` predicting the factor from that one latent; for continuous factors the squared
    correlation on the training rows (0 for a latent with variance ≤ 1e-12)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    scores = np.zeros((codes_train.shape[1], factors_train.shape[1]))
    for i in range(codes_train.shape[1]):
        for j in range(factors_train.shape[1]):
            mu, y = codes_train[:, i], factors_train[:, j]
            if continuous_factors:
                cov = np.cov(mu, y, ddof=1)
                scores[i, j] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    classifier = LinearSVC(C=0.01, class_weight="balanced").fit(mu[:, None], y)
                scores[i, j] = np.mean(classifier.predict(codes_test[:, i][:, None]) == factors_test[:, j])
    return scores


def sap(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    continuous_factors: bool = False,
) -> dict[str, float]:
    """Separated attribute predictability: per factor, the best latent's score minus the second best's (scores of
    `sap_score_matrix`), averaged over factors. Returns {"sap": float}."""
    codes_train = as_codes(codes_train, "codes_train")
    codes_test = as_codes(codes_test, "codes_test")
    factors_train = as_factors(factors_train, "factors_train", discrete=not continuous_factors)
    factors_test = as_factors(factors_test, "factors_test", discrete=not continuous_factors)
    check_pair(codes_train, factors_train, "sap (train)")
    check_pair(codes_test, factors_test, "sap (test)")
    need_two_latents(codes_train, "sap")
    if not continuous_factors:
        check_varying(factors_train, "sap (train)")
    matrix = np.sort(sap_score_matrix(codes_train, factors_train, codes_test, factors_test, continuous_factors), 0)
    return {"sap": float(np.mean(matrix[-1] - matrix[-2]))}
