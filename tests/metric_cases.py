"""Codes whose disentanglement is known, shared by the per-metric tests (tests/test_metric_*.py): discrete factors,
a code that is the factors themselves (ideal), and a code of pure noise (useless)."""

from __future__ import annotations

import numpy as np

FACTOR_SIZES = (4, 5, 6)


def identity_and_noise(n: int = 900, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(identity code, noise code, factors): the identity code is the factors as floats, one latent per factor."""
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(s, size=n) for s in FACTOR_SIZES], axis=1)
    return factors.astype(np.float64), rng.normal(size=(n, len(FACTOR_SIZES))), factors


def train_test(codes: np.ndarray, factors: np.ndarray, n_train: int = 600):
    """(codes_train, factors_train, codes_test, factors_test): the first `n_train` rows, then the rest."""
    return codes[:n_train], factors[:n_train], codes[n_train:], factors[n_train:]


class FactorGrid:
    """Ground-truth data whose observations are the factors themselves, sampled uniformly from a small grid (the
    interface the interventional metrics take: `latent.analysis.metrics.utils.GroundTruthData`)."""

    factor_sizes = FACTOR_SIZES

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        return np.stack([random_state.randint(s, size=num) for s in self.factor_sizes], axis=1)

    def sample_observations_from_factors(self, factors: np.ndarray, random_state=None) -> np.ndarray:
        return np.asarray(factors, dtype=np.float64)

    def sample_observations(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        return self.sample_observations_from_factors(self.sample_factors(num, random_state))


def noise_representation(seed: int = 1, dims: int = 4):
    """observations -> codes that carry nothing about them."""
    rng = np.random.default_rng(seed)
    return lambda x: rng.normal(size=(len(x), dims))
