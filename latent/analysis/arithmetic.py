"""Latent arithmetic: the direction between two groups of codes, and codes moved along it."""

from __future__ import annotations

import numpy as np

from latent.errors import LatentError


def attribute_vector(z_with: np.ndarray, z_without: np.ndarray) -> np.ndarray:
    """Mean code of the rows with an attribute minus the mean code of the rows without it."""
    if len(z_with) == 0 or len(z_without) == 0:
        raise LatentError("attribute vector: both predicates must match at least one row")
    return np.asarray(z_with, np.float64).mean(0) - np.asarray(z_without, np.float64).mean(0)


def apply_vector(z: np.ndarray, vector: np.ndarray, strengths: list[float]) -> np.ndarray:
    """Codes moved along `vector`: shape (rows, len(strengths), k), strength 0 being the rows themselves."""
    z = np.asarray(z, np.float64)
    return z[:, None, :] + np.asarray(strengths, np.float64)[None, :, None] * np.asarray(vector)[None, None, :]
