"""FactorVAE score (latent.analysis.metrics.factor_vae): ~1 when the code is the factors, near chance for noise."""

from __future__ import annotations

import pytest

from latent.analysis.metrics.factor_vae import factorvae_score
from tests.metric_cases import FactorGrid, noise_representation

pytestmark = pytest.mark.unit

SIZES = {"batch_size": 32, "num_train": 200, "num_eval": 200, "num_variance_estimate": 1000}


def test_identity_representation_scores_high_and_noise_near_chance():
    ideal = factorvae_score(FactorGrid(), lambda x: x, 0, **SIZES)
    assert ideal["factorvae_eval_accuracy"] > 0.95 and ideal["factorvae_num_active_dims"] == 3
    chance = factorvae_score(FactorGrid(), noise_representation(), 0, **SIZES)
    assert chance["factorvae_eval_accuracy"] < 0.5  # 3 factors: 1/3 is chance


def test_the_same_seed_gives_the_same_score():
    assert factorvae_score(FactorGrid(), lambda x: x, 7, **SIZES) == factorvae_score(
        FactorGrid(), lambda x: x, 7, **SIZES
    )
