"""Dimensionality reduction of latent codes: PCA and t-SNE."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# openTSNE's FFT gradient costs more per iteration than Barnes-Hut until the embedding is large: its grid grows with
# the embedding's extent and numpy's FFT runs on one core. Measured on latent codes (2 cores, exact neighbours):
# 5,000 rows BH 7.3 s / FFT 16.2 s, 10,000: 16.5 / 24.6, 15,000: 26.0 / 29.0, 20,000: 36.3 / 32.4.
TSNE_FFT_THRESHOLD = 18_000
# Exact nearest neighbours (scikit-learn's trees or brute force) for the affinities up to this many rows: on latent
# codes they are both exact and faster than openTSNE's default Annoy index (20,000 x 10: 1.4 s vs 5.3 s; 100,000 x
# 10 random normal: 33 s vs 39 s, see benchmarks/tsne.py). Above it the exact search grows as n^2 and Annoy wins.
TSNE_EXACT_NEIGHBORS_MAX = 100_000
TSNE_ITERATIONS = 500  # openTSNE's default, after its 250 early-exaggeration iterations


@dataclass(frozen=True)
class PCAResult:
    coords: np.ndarray  # (n, n_components)
    explained_variance_ratio: np.ndarray  # (n_components,)


def pca(codes: np.ndarray, n_components: int | None = None) -> PCAResult:
    from sklearn.decomposition import PCA

    if len(codes) < 2:  # one row has no variance to explain: its coordinates are the origin, the ratios undefined
        k = 1 if n_components is None else n_components
        return PCAResult(np.zeros((len(codes), k)), np.full(k, np.nan))
    k = min(codes.shape) if n_components is None else n_components
    model = PCA(n_components=k, svd_solver="full").fit(codes)
    return PCAResult(model.transform(codes), model.explained_variance_ratio_)


def tsne_plan(n: int) -> tuple[str, str]:
    """openTSNE's (negative gradient method, neighbour search) for `n` rows."""
    return ("fft" if n >= TSNE_FFT_THRESHOLD else "bh", "exact" if n <= TSNE_EXACT_NEIGHBORS_MAX else "annoy")


def fit_rows(n: int, limit: int, seed: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Positions (ascending) of the rows a 2-D map is fitted on: all n, or `limit` of them — those in `keep` first
    (e.g. the rows a report shows), the rest a seeded sample."""
    if n <= limit:
        return np.arange(n)
    kept = np.unique(np.asarray(keep if keep is not None else [], dtype=np.int64))[:limit]
    others = np.setdiff1d(np.arange(n), kept, assume_unique=True)
    extra = np.random.default_rng(seed).choice(others, limit - len(kept), replace=False)
    return np.sort(np.concatenate([kept, extra]))


def tsne(
    codes: np.ndarray,
    perplexity: float = 30.0,
    seed: int = 0,
    n_jobs: int = -1,
    rows: np.ndarray | None = None,
    n_iter: int = TSNE_ITERATIONS,
) -> np.ndarray:
    """2-D t-SNE with openTSNE: Barnes-Hut for small inputs, FFT interpolation for large ones (`tsne_plan`); 250
    early-exaggeration iterations, then `n_iter` (openTSNE's default 500; fewer is faster and less converged, see
    the README's t-SNE benchmark).

    With `rows` (positions, see `fit_rows`) the map is fitted on those rows only and every other row is placed at
    the median position of its 10 nearest fitted neighbours (openTSNE's `prepare_partial`, not optimised further):
    a bounded cost for tables far larger than a map needs.
    """
    from openTSNE import TSNE

    codes = np.ascontiguousarray(codes, dtype=np.float64)
    n = len(codes)
    fitted = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    perplexity = float(min(perplexity, max((len(fitted) - 1) / 3.0, 1.0)))
    method, neighbors = tsne_plan(len(fitted))
    embedding = TSNE(
        n_components=2,
        perplexity=perplexity,
        negative_gradient_method=method,
        neighbors=neighbors,
        n_iter=n_iter,
        random_state=seed,
        n_jobs=n_jobs,
        verbose=False,
    ).fit(codes if rows is None else codes[fitted])
    if rows is None:
        return np.asarray(embedding)
    out = np.empty((n, 2))
    out[fitted] = np.asarray(embedding)
    rest = np.setdiff1d(np.arange(n), fitted)
    for start in range(0, len(rest), 100_000):  # bounded memory for the new points' affinities
        part = rest[start : start + 100_000]
        placed = embedding.prepare_partial(codes[part], initialization="median", k=10, perplexity=min(perplexity, 5.0))
        out[part] = np.asarray(placed)
    return out


def umap(codes: np.ndarray, n_neighbors: int = 15, seed: int = 0, rows: np.ndarray | None = None) -> np.ndarray:
    """2-D UMAP (McInnes et al.) of the codes, from the optional `umap-learn` package (`pip install 'latent[umap]'`).
    With `rows` it is fitted on those rows and the others are added with UMAP's own `transform`."""
    try:
        from umap import UMAP
    except ImportError:
        from latent.errors import ConfigError

        raise ConfigError(
            "report.umap: UMAP needs the optional umap-learn package; install it with pip install 'latent[umap]'"
        ) from None
    codes = np.ascontiguousarray(codes, dtype=np.float32)
    fitted = np.arange(len(codes)) if rows is None else np.asarray(rows, dtype=np.int64)
    model = UMAP(n_components=2, n_neighbors=int(min(n_neighbors, max(len(fitted) - 1, 2))), random_state=seed)
    out = np.empty((len(codes), 2))
    out[fitted] = model.fit_transform(codes[fitted])
    rest = np.setdiff1d(np.arange(len(codes)), fitted)
    if len(rest):
        out[rest] = model.transform(codes[rest])
    return out
