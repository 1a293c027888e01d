"""The FactorVAE score (Kim & Mnih, 2018; disentanglement_lib `factor_vae.py`), an interventional metric."""

from __future__ import annotations

import numpy as np

from latent.analysis.metrics.utils import (
    FACTORVAE_BATCH_SIZE,
    FACTORVAE_NUM_VARIANCE_ESTIMATE,
    FACTORVAE_PRUNE_THRESHOLD,
    NUM_TEST,
    NUM_TRAIN,
    GroundTruthData,
    RandomStateLike,
    RepresentationFunction,
    as_random_state,
    representations,
)


def factorvae_score(
    ground_truth: GroundTruthData,
    represent: RepresentationFunction,
    random_state: RandomStateLike = 0,
    batch_size: int = FACTORVAE_BATCH_SIZE,
    num_train: int = NUM_TRAIN,
    num_eval: int = NUM_TEST,
    num_variance_estimate: int = FACTORVAE_NUM_VARIANCE_ESTIMATE,
    prune_threshold: float = FACTORVAE_PRUNE_THRESHOLD,
) -> dict[str, float]:
    """FactorVAE score: each vote fixes one random factor across a batch of `batch_size` samples, divides each
    latent's variance over that batch by its variance over `num_variance_estimate` samples, and votes (factor,
    latent of least normalised variance); the classifier is the majority vote per latent, fitted on `num_train`
    votes and scored on `num_eval` fresh ones. Latents whose std over the data is below `prune_threshold` (0.05,
    collapsed to the prior) are left out. Defaults and sampling order as in disentanglement_lib.

    Returns {"factorvae_train_accuracy", "factorvae_eval_accuracy", "factorvae_num_active_dims"} (the count of
    latents kept; disentanglement_lib's `num_active_dims` reports the length of its mask, i.e. every latent)."""
    rs = as_random_state(random_state)
    observations = ground_truth.sample_observations(num_variance_estimate, rs)
    global_variances = np.var(representations(observations, represent, 64), axis=0, ddof=1)
    del observations
    active = np.flatnonzero(np.sqrt(global_variances) >= prune_threshold)
    if active.size == 0:
        return {"factorvae_train_accuracy": 0.0, "factorvae_eval_accuracy": 0.0, "factorvae_num_active_dims": 0.0}

    def votes(num_points: int) -> np.ndarray:
        counts = np.zeros((ground_truth.num_factors, global_variances.shape[0]), dtype=np.int64)
        for _ in range(num_points):
            factor = rs.randint(ground_truth.num_factors)
            factors = ground_truth.sample_factors(batch_size, rs)
            factors[:, factor] = factors[0, factor]
            codes = np.asarray(represent(ground_truth.sample_observations_from_factors(factors, rs)))
            local = np.var(codes, axis=0, ddof=1)
            counts[factor, active[np.argmin(local[active] / global_variances[active])]] += 1
        return counts

    train_votes = votes(num_train)
    classifier = np.argmax(train_votes, axis=0)
    columns = np.arange(train_votes.shape[1])
    train_accuracy = np.sum(train_votes[classifier, columns]) / np.sum(train_votes)
    eval_votes = votes(num_eval)
    eval_accuracy = np.sum(eval_votes[classifier, columns]) / np.sum(eval_votes)
    return {
        "factorvae_train_accuracy": float(train_accuracy),
        "factorvae_eval_accuracy": float(eval_accuracy),
        "factorvae_num_active_dims": float(active.size),
    }
