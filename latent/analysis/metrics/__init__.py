"""Disentanglement metrics, one per module as in google-research/disentanglement_lib's `evaluation/metrics/`
(Locatello et al., 2019): pure functions of codes and ground-truth factors, with the estimators and defaults of
disentanglement_lib so that a number computed here equals theirs on the same inputs (`tests/test_disentangle.py`
checks that against values produced by their own code).

| module | function | estimator |
|---|---|---|
| `mig` | `mig` | codes discretised into 20-bin histograms, discrete MI, top-two gap / H(factor) |
| `dci` | `dci` | `GradientBoostingClassifier()` importances; disentanglement, completeness, accuracies |
| `sap` | `sap` | per latent × factor `LinearSVC(C=0.01, class_weight="balanced")` accuracy, top-two gap |
| `modularity` | `modularity_explicitness` | discretised MI; `LogisticRegression()` ROC-AUC |
| `factor_vae` | `factorvae_score` | interventional: fixed factor → latent of least normalised variance, majority vote |
| `beta_vae` | `beta_vae_score` | interventional: fixed factor predicted from code differences |
| `scores` | `disentanglement_scores` | the four table metrics on one table, split into train/test rows with a seed |

The interventional metrics take a ground-truth data object (`utils.GroundTruthData`) and a representation function
(observations -> codes); `latent.explore.disentangle` builds both from a dataset table and a trained model.
"""

from latent.analysis.metrics.beta_vae import beta_vae_score
from latent.analysis.metrics.dci import dci, dci_completeness, dci_disentanglement
from latent.analysis.metrics.factor_vae import factorvae_score
from latent.analysis.metrics.mig import mig
from latent.analysis.metrics.modularity import modularity_explicitness, modularity_from_mi
from latent.analysis.metrics.sap import sap
from latent.analysis.metrics.scores import ALL_METRICS, FULL_BUDGET, budget_sizes, disentanglement_scores, split_rows
from latent.analysis.metrics.utils import GroundTruthData, as_random_state, histogram_discretize

__all__ = [
    "ALL_METRICS",
    "FULL_BUDGET",
    "GroundTruthData",
    "as_random_state",
    "beta_vae_score",
    "budget_sizes",
    "dci",
    "dci_completeness",
    "dci_disentanglement",
    "disentanglement_scores",
    "factorvae_score",
    "histogram_discretize",
    "mig",
    "modularity_explicitness",
    "modularity_from_mi",
    "sap",
    "split_rows",
]
