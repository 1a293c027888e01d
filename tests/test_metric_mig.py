"""MIG (latent.analysis.metrics.mig): 1 for a code that is the factors, ~0 for noise and for a duplicated code."""

from __future__ import annotations

import numpy as np
import pytest

from latent.analysis.metrics.mig import mig
from latent.errors import DataError
from tests.metric_cases import identity_and_noise

pytestmark = pytest.mark.unit


def test_identity_code_scores_one_and_noise_scores_near_zero():
    identity, noise, factors = identity_and_noise()
    assert mig(identity, factors)["mig"] > 0.95  # not exactly 1: the other latents share a little MI by chance
    assert mig(noise, factors)["mig"] < 0.05


def test_a_latent_shared_by_two_dimensions_has_no_gap():
    identity, _, factors = identity_and_noise()
    assert mig(np.hstack([identity, identity]), factors)["mig"] == pytest.approx(0.0, abs=1e-9)


def test_one_latent_is_an_error_naming_the_metric():
    identity, _, factors = identity_and_noise()
    with pytest.raises(DataError, match="mig: the gap between the top two latents"):
        mig(identity[:, :1], factors)
