"""β-VAE score (latent.analysis.metrics.beta_vae): ~1 when the code is the factors, near chance for noise."""

from __future__ import annotations

import pytest

from latent.analysis.metrics.beta_vae import beta_vae_score
from tests.metric_cases import FactorGrid, noise_representation

pytestmark = pytest.mark.unit

SIZES = {"batch_size": 16, "num_train": 150, "num_eval": 100}


def test_identity_representation_scores_high_and_noise_near_chance():
    assert beta_vae_score(FactorGrid(), lambda x: x, 0, **SIZES)["beta_vae_eval_accuracy"] > 0.9
    assert beta_vae_score(FactorGrid(), noise_representation(), 0, **SIZES)["beta_vae_eval_accuracy"] < 0.5
