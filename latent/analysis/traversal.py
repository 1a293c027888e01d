"""Per-dimension traversals: how much each latent dimension carries, and codes swept along the informative ones."""

from __future__ import annotations

import numpy as np


def kl_per_dim(z_mean: np.ndarray, z_logvar: np.ndarray) -> np.ndarray:
    """Mean KL(q(z_j|x) ‖ N(0, 1)) of each latent dimension over the rows: the information each one carries."""
    z_mean = np.asarray(z_mean, np.float64)
    z_logvar = np.asarray(z_logvar, np.float64)
    return np.mean(0.5 * (z_mean**2 + np.exp(z_logvar) - z_logvar - 1.0), axis=0)


def informative_dims(kl: np.ndarray, n: int) -> list[int]:
    """The `n` dimensions carrying the most KL, most first (ties in dimension order)."""
    return [int(d) for d in np.argsort(-np.asarray(kl), kind="stable")[:n]]


def traversal_offsets(steps: int, span: float = 3.0) -> np.ndarray:
    """The `steps` offsets, in σ, of a traversal from −span to +span."""
    return np.linspace(-span, span, steps)


def traversal_codes(
    anchors: np.ndarray, dims: list[int], sigma: np.ndarray, steps: int, span: float = 3.0
) -> np.ndarray:
    """Each dimension in `dims` swept over anchor ± span·σ (σ per dimension), the others held at the anchor:
    shape (anchors, len(dims), steps, k)."""
    anchors = np.asarray(anchors, np.float64)
    offsets = traversal_offsets(steps, span)
    out = np.repeat(anchors[:, None, None, :], len(dims), axis=1).repeat(steps, axis=2)
    for i, d in enumerate(dims):
        out[:, i, :, d] = anchors[:, None, d] + offsets[None, :] * sigma[d]
    return out
