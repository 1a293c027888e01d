"""DCI (latent.analysis.metrics.dci): near 1 for a code that is the factors, near 0 for noise."""

from __future__ import annotations

import numpy as np
import pytest

from latent.analysis.metrics.dci import dci, dci_completeness, dci_disentanglement
from tests.metric_cases import identity_and_noise, train_test

pytestmark = pytest.mark.unit


def test_identity_code_scores_high_and_noise_scores_low():
    identity, noise, factors = identity_and_noise(n=300)  # small: a hundred boosted trees per factor and class
    good = dci(*train_test(identity, factors, n_train=200))
    bad = dci(*train_test(noise, factors, n_train=200))
    assert good["dci_disentanglement"] > 0.9 and good["dci_completeness"] > 0.9
    assert good["dci_informativeness_test"] > 0.99
    assert bad["dci_disentanglement"] < 0.15 and bad["dci_completeness"] < 0.15
    assert bad["dci_informativeness_test"] < 0.4


def test_importance_matrix_scores():
    assert dci_disentanglement(np.eye(3)) == pytest.approx(1.0)
    assert dci_completeness(np.eye(3)) == pytest.approx(1.0)
    assert dci_disentanglement(np.ones((3, 3))) == pytest.approx(0.0, abs=1e-6)
