"""DCI: disentanglement, completeness and informativeness (Eastwood & Williams, 2018; disentanglement_lib
`dci.py`)."""

from __future__ import annotations

import numpy as np

from latent.analysis.metrics.utils import as_codes, as_factors, check_pair, check_varying


def importance_matrix_gbt(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    random_state: int | None = 0,
) -> tuple[np.ndarray, float, float]:
    """(n_latents, n_factors) feature importances of one `GradientBoostingClassifier()` per factor, and the mean
    train and test accuracies of those classifiers."""
    from sklearn.ensemble import GradientBoostingClassifier

    importance = np.zeros((codes_train.shape[1], factors_train.shape[1]), dtype=np.float64)
    train_acc, test_acc = [], []
    for j in range(factors_train.shape[1]):
        model = GradientBoostingClassifier(random_state=random_state)
        model.fit(codes_train, factors_train[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(codes_train) == factors_train[:, j]))
        test_acc.append(np.mean(model.predict(codes_test) == factors_test[:, j]))
    return importance, float(np.mean(train_acc)), float(np.mean(test_acc))


def _entropy_base(p: np.ndarray, base: int) -> np.ndarray:
    """scipy.stats.entropy along axis 0 (columns normalised to sum 1), in the given base."""
    from scipy.stats import entropy

    return entropy(p, base=base)


def dci_disentanglement(importance: np.ndarray) -> float:
    """Σ_latents (1 − H_factors(P_latent)) · (latent's share of the total importance)."""
    per_code = 1.0 - _entropy_base(importance.T + 1e-11, importance.shape[1])
    weights = importance if importance.sum() != 0.0 else np.ones_like(importance)
    return float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))


def dci_completeness(importance: np.ndarray) -> float:
    """Σ_factors (1 − H_latents(P_factor)) · (factor's share of the total importance)."""
    per_factor = 1.0 - _entropy_base(importance + 1e-11, importance.shape[0])
    weights = importance if importance.sum() != 0.0 else np.ones_like(importance)
    return float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))


def dci(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    random_state: int | None = 0,
) -> dict[str, float]:
    """Disentanglement, completeness and informativeness from gradient-boosted-tree importances (100 trees of
    depth 3 per factor and class: scikit-learn's defaults, as in disentanglement_lib).

    `random_state` seeds the trees; disentanglement_lib leaves it None (NumPy's global state). With the default
    `subsample=1.0` and all features at each split it only breaks ties between equally good splits.

    Returns {"dci_disentanglement", "dci_completeness", "dci_informativeness_train", "dci_informativeness_test"}
    (informativeness is the classifiers' mean accuracy)."""
    codes_train, factors_train = as_codes(codes_train, "codes_train"), as_factors(factors_train, "factors_train")
    codes_test, factors_test = as_codes(codes_test, "codes_test"), as_factors(factors_test, "factors_test")
    check_pair(codes_train, factors_train, "dci (train)")
    check_pair(codes_test, factors_test, "dci (test)")
    check_varying(factors_train, "dci (train)")
    importance, train_acc, test_acc = importance_matrix_gbt(
        codes_train, factors_train, codes_test, factors_test, random_state
    )
    return {
        "dci_disentanglement": dci_disentanglement(importance),
        "dci_completeness": dci_completeness(importance),
        "dci_informativeness_train": train_acc,
        "dci_informativeness_test": test_acc,
    }
