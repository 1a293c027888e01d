"""What every disentanglement metric shares (disentanglement_lib's `evaluation/metrics/utils.py`): input
checks, histogram discretisation, discrete mutual information, and what the interventional metrics need of a
ground-truth dataset and a representation.

Layout: `codes` (n_samples, n_latents) float, `factors` (n_samples, n_factors) int, row-major
(disentanglement_lib passes the transposes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from latent.errors import DataError

# The defaults of disentanglement_lib's unsupervised study (config/unsupervised_study_v1/metric_configs/*.gin).
NUM_BINS = 20
NUM_TRAIN = 10000
NUM_TEST = 5000
FACTORVAE_BATCH_SIZE = 64
FACTORVAE_NUM_VARIANCE_ESTIMATE = 10000
FACTORVAE_PRUNE_THRESHOLD = 0.05

RepresentationFunction = Callable[[np.ndarray], np.ndarray]
RandomStateLike = np.random.RandomState | np.random.Generator | int | None


# ---- inputs ---------------------------------------------------------------------------------------------------


def as_codes(codes: Any, what: str = "codes") -> np.ndarray:
    """(n, k) numeric array, dtype kept (the histogram's bin edges follow it, as in disentanglement_lib)."""
    arr = np.asarray(codes)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{what}: expected an (n_samples, n_latents) array, got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{what}: expected numbers, got dtype {arr.dtype}")
    if arr.dtype.kind in "iub":
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise DataError(f"{what}: non-finite value at row {row}")
    return arr


def as_factors(factors: Any, what: str = "factors", discrete: bool = True) -> np.ndarray:
    """(n, f) integer array; whole-valued floats are accepted as integers."""
    arr = np.asarray(factors)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{what}: expected an (n_samples, n_factors) array, got shape {arr.shape}")
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind != "f" or not np.isfinite(arr).all():
        raise DataError(f"{what}: expected integer factor indices, got dtype {arr.dtype}")
    if not discrete:
        return arr
    if not np.array_equal(arr, np.round(arr)):
        raise DataError(f"{what}: expected integer factor indices (discrete factors), got non-integer values")
    return arr.astype(np.int64)


def check_pair(codes: np.ndarray, factors: np.ndarray, what: str) -> None:
    if len(codes) != len(factors):
        raise DataError(f"{what}: codes have {len(codes)} rows but factors have {len(factors)}")
    if len(codes) < 2:
        raise DataError(f"{what}: at least 2 rows are needed, got {len(codes)}")


def check_varying(factors: np.ndarray, what: str) -> None:
    for j in range(factors.shape[1]):
        if np.unique(factors[:, j]).size < 2:
            raise DataError(f"{what}: factor {j} takes a single value; a metric needs at least two")


def need_two_latents(codes: np.ndarray, metric: str) -> None:
    if codes.shape[1] < 2:
        raise DataError(f"{metric}: the gap between the top two latents needs at least 2 latent dimensions")


# ---- shared estimators (disentanglement_lib's evaluation/metrics/utils.py) --------------------------------------


def histogram_discretize(codes: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """Each latent (column) into `num_bins` equal-width bins over its own range: np.digitize against the left
    edges of np.histogram's bins (so the maximum falls in the last bin), as disentanglement_lib does."""
    codes = np.asarray(codes)
    out = np.zeros(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram(codes[:, i], num_bins)[1][:-1]
        out[:, i] = np.digitize(codes[:, i], edges)
    return out


def discrete_mutual_info(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(n_latents, n_factors) mutual information in nats, sklearn's `mutual_info_score` on the labels."""
    from sklearn.metrics import mutual_info_score

    m = np.zeros((discrete_codes.shape[1], factors.shape[1]))
    for i in range(discrete_codes.shape[1]):
        for j in range(factors.shape[1]):
            m[i, j] = mutual_info_score(factors[:, j], discrete_codes[:, i])
    return m


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """(n_factors,) entropy in nats of each factor, as I(y; y)."""
    from sklearn.metrics import mutual_info_score

    return np.array([mutual_info_score(factors[:, j], factors[:, j]) for j in range(factors.shape[1])])


# ---- interventional metrics: ground-truth data and representations -----------------------------------------


class GroundTruthData(Protocol):
    """What the interventional metrics need of a dataset (disentanglement_lib's GroundTruthData)."""

    @property
    def num_factors(self) -> int: ...

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray: ...

    def sample_observations_from_factors(self, factors: np.ndarray, random_state: np.random.RandomState): ...

    def sample_observations(self, num: int, random_state: np.random.RandomState): ...


def as_random_state(random_state: RandomStateLike) -> np.random.RandomState:
    """A legacy RandomState (the sampling API disentanglement_lib uses): an int or None seeds one, a Generator
    seeds one from its stream, a RandomState is used as is."""
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if isinstance(random_state, np.random.Generator):
        return np.random.RandomState(int(random_state.integers(2**32)))
    return np.random.RandomState(random_state)


def representations(observations: np.ndarray, represent: RepresentationFunction, batch_size: int) -> np.ndarray:
    """(n, k) codes of observations, `batch_size` at a time (disentanglement_lib's obtain_representation)."""
    parts = [np.asarray(represent(observations[i : i + batch_size])) for i in range(0, len(observations), batch_size)]
    return np.vstack(parts)
