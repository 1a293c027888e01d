"""Analyses of a latent space: pure functions of arrays (and, for generation, a model)."""

from latent.analysis.compare import compare_tables, linear_cka
from latent.analysis.dr import PCAResult, pca, tsne, umap
from latent.analysis.generate import interpolate, sample_prior
from latent.analysis.probes import probe_accuracy, probe_report

__all__ = [
    "PCAResult",
    "compare_tables",
    "interpolate",
    "linear_cka",
    "pca",
    "probe_accuracy",
    "probe_report",
    "sample_prior",
    "tsne",
    "umap",
]
