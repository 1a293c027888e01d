"""Probes: how much label information a latent space makes linearly (logistic regression) or locally (kNN)
available, at label budgets of 10, 100, 1000 and all labels, against the raw inputs as a reference."""

from __future__ import annotations

import numpy as np

PROBES = ("logistic", "knn")


def _budget_draws(y_train: np.ndarray, budget: int | None, repeats: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices for one label budget: everything, or `repeats` class-stratified draws (at least one row per
    class while the budget allows)."""
    if budget is None or budget >= len(y_train):
        return [np.arange(len(y_train))]
    classes = np.unique(y_train)
    draws = []
    for _ in range(repeats):
        first = [rng.choice(np.flatnonzero(y_train == c)) for c in classes][:budget]
        rest = rng.permutation(np.setdiff1d(np.arange(len(y_train)), first))[: max(budget - len(first), 0)]
        draws.append(np.concatenate([first, rest]).astype(int))
    return draws


def _fit_score(method: str, x_train, y_train, x_test, y_test, k: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y_train)) < 2:
        return float(np.mean(y_test == y_train[0]))
    scaler = StandardScaler().fit(x_train)
    if method == "logistic":
        clf = LogisticRegression(max_iter=2000)
    elif method == "knn":
        clf = KNeighborsClassifier(n_neighbors=min(k, len(y_train)))
    else:
        raise ValueError(f"probe method: expected one of {PROBES}, got {method!r}")
    clf.fit(scaler.transform(x_train), y_train)
    return float(clf.score(scaler.transform(x_test), y_test))


def probe_accuracy(
    z_train: np.ndarray,
    y_train: np.ndarray,
    z_test: np.ndarray,
    y_test: np.ndarray,
    budgets: list[int | None],
    repeats: int = 3,
    seed: int = 0,
    method: str = "logistic",
    k: int = 5,
) -> dict[str, float]:
    """Test accuracy of a probe trained on `budget` labelled training rows, per budget (None: all labels; key
    "all"), averaged over `repeats` stratified draws for the small budgets. Features are standardised on the
    training draw. `method`: "logistic" (linear readout) or "knn" (k nearest neighbours, local structure)."""
    rng = np.random.default_rng(seed)
    scores: dict[str, float] = {}
    for budget in budgets:
        key = "all" if budget is None or budget >= len(y_train) else str(budget)
        draws = _budget_draws(y_train, budget, repeats, rng)
        scores[key] = float(np.mean([_fit_score(method, z_train[i], y_train[i], z_test, y_test, k) for i in draws]))
    return scores


def probe_report(
    z: dict[str, np.ndarray],
    x: dict[str, np.ndarray] | None,
    y: dict[str, np.ndarray],
    budgets: list[int | None] = (10, 100, 1000, None),
    repeats: int = 3,
    seed: int = 0,
    max_test: int = 5000,
) -> dict[str, float]:
    """Every probe on latents (and on raw inputs when `x` is given), trained on the "train" entries and scored on
    the "test" entries of the dicts; keys like `probe_latent_logistic_100`, `probe_raw_knn_all`."""
    keep = np.arange(len(y["test"]))
    if len(keep) > max_test:
        keep = np.sort(np.random.default_rng(seed).choice(keep, max_test, replace=False))
    spaces = {"latent": z} if x is None else {"latent": z, "raw": x}
    out: dict[str, float] = {}
    for space, data in spaces.items():
        for method in PROBES:
            scores = probe_accuracy(
                data["train"], y["train"], data["test"][keep], y["test"][keep], list(budgets), repeats, seed, method
            )
            out.update({f"probe_{space}_{method}_{b}": v for b, v in scores.items()})
    return out
