"""MIG, the mutual information gap (Chen et al., 2018; disentanglement_lib `mig.py`)."""

from __future__ import annotations

import numpy as np

from latent.analysis.metrics.utils import (
    NUM_BINS,
    as_codes,
    as_factors,
    check_pair,
    check_varying,
    discrete_entropy,
    discrete_mutual_info,
    histogram_discretize,
    need_two_latents,
)


def mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = NUM_BINS) -> dict[str, float]:
    """Mutual information gap: for each factor, the MI of the most informative latent minus that of the second,
    divided by the factor's entropy; averaged over factors. disentanglement_lib's `discrete_mig` (20 bins).

    Returns {"mig": float}."""
    codes, factors = as_codes(codes), as_factors(factors)
    check_pair(codes, factors, "mig")
    check_varying(factors, "mig")
    need_two_latents(codes, "mig")
    m = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)
    entropy = discrete_entropy(factors)
    top = np.sort(m, axis=0)[::-1]
    return {"mig": float(np.mean((top[0] - top[1]) / entropy))}
