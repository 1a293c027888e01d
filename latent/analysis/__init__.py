"""Analyses of a latent space: pure functions of arrays (and, for generation, a model)."""

from latent.analysis.dr import PCAResult, pca, tsne
from latent.analysis.generate import interpolate, sample_prior

__all__ = ["PCAResult", "interpolate", "pca", "sample_prior", "tsne"]
