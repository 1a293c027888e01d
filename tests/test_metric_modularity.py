"""Modularity and explicitness (latent.analysis.metrics.modularity): high for a code that is the factors."""

from __future__ import annotations

import numpy as np
import pytest

from latent.analysis.metrics.modularity import modularity_explicitness, modularity_from_mi
from latent.errors import DataError
from tests.metric_cases import identity_and_noise, train_test

pytestmark = pytest.mark.unit


def test_identity_code_is_modular_and_explicit_and_noise_is_not_explicit():
    identity, noise, factors = identity_and_noise()
    good = modularity_explicitness(*train_test(identity, factors))
    bad = modularity_explicitness(*train_test(noise, factors))
    assert good["modularity"] > 0.9 and good["explicitness_test"] > 0.75
    assert bad["explicitness_test"] < 0.6


def test_modularity_of_mutual_information_matrices():
    assert modularity_from_mi(np.eye(3)) == pytest.approx(1.0)
    assert modularity_from_mi(np.ones((3, 3))) == pytest.approx(0.0)
    assert modularity_from_mi(np.zeros((2, 3))) == 0.0


def test_a_constant_latent_is_an_error():
    identity, _, factors = identity_and_noise()
    identity[:, 1] = 0.0
    with pytest.raises(DataError, match="latent 1 is constant"):
        modularity_explicitness(*train_test(identity, factors))
