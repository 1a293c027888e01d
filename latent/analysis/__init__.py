"""Analyses of a latent space: pure functions of arrays and models (NumPy, SciPy, scikit-learn, torch, openTSNE,
umap). Nothing here reads a table, loads a model from a store, writes a file or logs to MLflow: that is
`latent.explore`'s job (tests/test_import_purity.py checks it)."""

from latent.analysis.arithmetic import apply_vector, attribute_vector
from latent.analysis.cka import linear_cka
from latent.analysis.dr import PCAResult, pca, tsne, umap
from latent.analysis.drift import drift_figures, mmd_rbf, should_retrain
from latent.analysis.generate import interpolate, sample_prior
from latent.analysis.probes import probe_accuracy, probe_report
from latent.analysis.traversal import informative_dims, kl_per_dim, traversal_codes

__all__ = [
    "PCAResult",
    "apply_vector",
    "attribute_vector",
    "drift_figures",
    "informative_dims",
    "interpolate",
    "kl_per_dim",
    "linear_cka",
    "mmd_rbf",
    "pca",
    "probe_accuracy",
    "probe_report",
    "sample_prior",
    "should_retrain",
    "traversal_codes",
    "tsne",
    "umap",
]
