"""The β-VAE score (Higgins et al., 2017; disentanglement_lib `beta_vae.py`), an interventional metric."""

from __future__ import annotations

import warnings

import numpy as np

from latent.analysis.metrics.utils import (
    FACTORVAE_BATCH_SIZE,
    NUM_TEST,
    NUM_TRAIN,
    GroundTruthData,
    RandomStateLike,
    RepresentationFunction,
    as_random_state,
)


def _beta_vae_points(
    ground_truth: GroundTruthData,
    represent: RepresentationFunction,
    batch_size: int,
    num_points: int,
    rs: np.random.RandomState,
) -> tuple[np.ndarray, np.ndarray]:
    points, labels = None, np.zeros(num_points, dtype=np.int64)
    for i in range(num_points):
        factor = rs.randint(ground_truth.num_factors)
        first = ground_truth.sample_factors(batch_size, rs)
        second = ground_truth.sample_factors(batch_size, rs)
        second[:, factor] = first[:, factor]
        obs1 = ground_truth.sample_observations_from_factors(first, rs)
        obs2 = ground_truth.sample_observations_from_factors(second, rs)
        feature = np.mean(np.abs(np.asarray(represent(obs1)) - np.asarray(represent(obs2))), axis=0)
        if points is None:
            points = np.zeros((num_points, feature.shape[0]))
        points[i], labels[i] = feature, factor
    return points, labels


def beta_vae_score(
    ground_truth: GroundTruthData,
    represent: RepresentationFunction,
    random_state: RandomStateLike = 0,
    batch_size: int = FACTORVAE_BATCH_SIZE,
    num_train: int = NUM_TRAIN,
    num_eval: int = NUM_TEST,
) -> dict[str, float]:
    """β-VAE score: each point fixes one random factor between two batches of `batch_size` samples and takes the
    mean absolute difference of their codes; a `LogisticRegression` predicts the fixed factor from it, trained on
    `num_train` points and scored on `num_eval` fresh ones. Defaults and sampling order as in disentanglement_lib.

    Returns {"beta_vae_train_accuracy", "beta_vae_eval_accuracy"}."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    rs = as_random_state(random_state)
    train_points, train_labels = _beta_vae_points(ground_truth, represent, batch_size, num_train, rs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(random_state=rs).fit(train_points, train_labels)
    train_accuracy = np.mean(model.predict(train_points) == train_labels)
    eval_points, eval_labels = _beta_vae_points(ground_truth, represent, batch_size, num_eval, rs)
    return {
        "beta_vae_train_accuracy": float(train_accuracy),
        "beta_vae_eval_accuracy": float(model.score(eval_points, eval_labels)),
    }
