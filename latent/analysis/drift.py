"""Drift of new rows against the training rows, in latent space: pure functions of arrays."""

from __future__ import annotations

import numpy as np


def mmd_rbf(a: np.ndarray, b: np.ndarray, max_points: int = 1000, seed: int = 0) -> float:
    """Unbiased MMD² between samples a and b with an RBF kernel whose bandwidth is the median pairwise distance
    of the pooled sample (at most max_points from each side)."""
    rng = np.random.default_rng(seed)
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if len(a) > max_points:
        a = a[rng.choice(len(a), max_points, replace=False)]
    if len(b) > max_points:
        b = b[rng.choice(len(b), max_points, replace=False)]
    pooled = np.concatenate([a, b])
    sq = np.sum(pooled**2, 1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0.0)
    upper = d2[np.triu_indices(len(pooled), 1)]
    bandwidth2 = float(np.median(upper)) or 1.0
    k = np.exp(-d2 / (2 * bandwidth2))
    n, m = len(a), len(b)
    kaa, kbb, kab = k[:n, :n], k[n:, n:], k[:n, n:]
    return float(
        (kaa.sum() - np.trace(kaa)) / (n * (n - 1)) + (kbb.sum() - np.trace(kbb)) / (m * (m - 1)) - 2 * kab.mean()
    )


def drift_figures(
    new_z: np.ndarray,
    new_recon: np.ndarray,
    train_z: np.ndarray,
    train_recon: np.ndarray,
    mmd2_threshold: float,
    recon_ratio_threshold: float,
    max_rows: int = 1000,
    seed: int = 0,
) -> dict[str, float | bool] | None:
    """`mmd2` (new vs training z_mean, at most max_rows from each side), `recon_ratio` (mean reconstruction error
    of the new rows over the training rows') and `drifted` (either over its threshold); None with fewer than two
    rows on a side, where neither figure means anything."""
    if len(new_z) < 2 or len(train_z) < 2:
        return None
    mmd2 = mmd_rbf(new_z, train_z, max_points=max_rows, seed=seed)
    reference = float(np.mean(train_recon))
    ratio = float(np.mean(new_recon)) / reference if reference > 0 else float("inf")
    return {
        "mmd2": mmd2,
        "recon_ratio": ratio,
        "drifted": bool(mmd2 > mmd2_threshold or ratio > recon_ratio_threshold),
    }


def should_retrain(policy: str, drift: dict | None) -> bool:
    """What a run whose data only grew (same config) does: train a new model on the whole snapshot (True) or
    encode the new rows with the existing model (False). `always`: retrain; `never`: never; `on_drift`: when the
    new rows drifted past a threshold."""
    if policy == "always":
        return True
    if policy == "never":
        return False
    return bool(drift and drift.get("drifted"))
