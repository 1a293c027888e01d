"""SAP (latent.analysis.metrics.sap): high for a code that is the factors, ~0 for noise."""

from __future__ import annotations

import pytest

from latent.analysis.metrics.sap import sap
from tests.metric_cases import identity_and_noise, train_test

pytestmark = pytest.mark.unit


def test_identity_code_scores_high_and_noise_scores_low():
    identity, noise, factors = identity_and_noise()
    good = sap(*train_test(identity, factors))["sap"]
    bad = sap(*train_test(noise, factors))["sap"]
    assert bad < 0.05 and good > bad + 0.15


def test_continuous_factors_use_squared_correlation():
    identity, noise, factors = identity_and_noise()
    assert sap(*train_test(identity, factors), continuous_factors=True)["sap"] > 0.9
    assert sap(*train_test(noise, factors), continuous_factors=True)["sap"] < 0.05
