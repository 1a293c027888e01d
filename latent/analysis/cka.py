"""Comparing latent spaces: linear CKA (Kornblith et al., 2019) between two codes of the same rows."""

from __future__ import annotations

import numpy as np

from latent.errors import LatentError


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear centred kernel alignment of two representations of the same n rows (n × k₁, n × k₂): 1 for
    representations equal up to rotation and isotropic scaling, near 0 for unrelated ones. Computed in feature
    space, O(n·k²), so a million rows are fine."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
        raise LatentError(f"CKA: expected two 2-D arrays with the same number of rows, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise LatentError("CKA: needs at least 2 shared rows")
    a = a - a.mean(0)
    b = b - b.mean(0)
    cross = np.linalg.norm(a.T @ b, "fro") ** 2
    norm = np.linalg.norm(a.T @ a, "fro") * np.linalg.norm(b.T @ b, "fro")
    return float(cross / norm) if norm > 0 else 0.0
