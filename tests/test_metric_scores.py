"""All table metrics at once (latent.analysis.metrics.scores): the chosen metrics on a seeded split, and budgets."""

from __future__ import annotations

import pytest

from latent.analysis.metrics.mig import mig
from latent.analysis.metrics.scores import budget_sizes, disentanglement_scores, split_rows
from tests.metric_cases import identity_and_noise

pytestmark = pytest.mark.unit


def test_scores_are_the_chosen_metrics_on_the_training_rows_of_the_split():
    identity, _, factors = identity_and_noise()
    scores = disentanglement_scores(identity, factors, seed=3, num_train=600, num_test=300, metrics=("mig",))
    train, _ = split_rows(len(factors), 3, 600, 300)
    assert scores == mig(identity[train], factors[train])


def test_unknown_metric_and_small_budget_are_errors():
    identity, _, factors = identity_and_noise()
    with pytest.raises(ValueError, match="unknown"):
        disentanglement_scores(identity, factors, metrics=("nope",))
    with pytest.raises(ValueError, match="budget"):
        budget_sizes(4)
    assert budget_sizes(100)["dci"] == {"num_train": 100, "num_test": 50}
