"""Molecule metrics as pure functions of SMILES lists and arrays (MOSES, Polykovskiy et al., 2020): validity,
uniqueness and novelty of generated molecules, reconstruction accuracy, property probes and latent-neighbour
Tanimoto similarity.

Validity is the fraction of strings RDKit parses into a molecule with at least one atom; uniqueness the fraction of
distinct canonical SMILES among the valid ones; novelty the fraction of those distinct molecules absent from the
training set. Nothing here reads a workspace or logs anything.
"""

from __future__ import annotations

import numpy as np

from latent.chem import canonical_smiles

NEIGHBOURS = 5
MAX_QUERY_ROWS = 2000


def _valid(smiles: list[str]) -> list[str]:
    return [c for c in (canonical_smiles(s) for s in smiles) if c is not None]


def validity(smiles: list[str]) -> float:
    return len(_valid(smiles)) / len(smiles) if smiles else 0.0


def uniqueness(smiles: list[str]) -> float:
    valid = _valid(smiles)
    return len(set(valid)) / len(valid) if valid else 0.0


def novelty(smiles: list[str], train: list[str]) -> float:
    """Fraction of the distinct valid molecules that are not in the training set (compared as canonical SMILES)."""
    distinct = set(_valid(smiles))
    known = set(_valid(train))
    return len(distinct - known) / len(distinct) if distinct else 0.0


def generation_metrics(smiles: list[str], train: list[str]) -> dict[str, float]:
    return {
        "molecules_validity": validity(smiles),
        "molecules_uniqueness": uniqueness(smiles),
        "molecules_novelty": novelty(smiles, train),
        "molecules_samples": float(len(smiles)),
    }


def reconstruction_accuracy(originals: list[str], decoded: list[str]) -> float:
    """Fraction of molecules whose decoded molecule is the same (equal canonical SMILES)."""
    if not originals:
        return 0.0
    same = [
        canonical_smiles(a) is not None and canonical_smiles(a) == canonical_smiles(b)
        for a, b in zip(originals, decoded, strict=True)
    ]
    return float(np.mean(same))


def token_accuracy(originals: list[list[str]], decoded: list[list[str]]) -> float:
    """Mean over molecules of the fraction of the original's tokens that the decoded sequence has at the same
    position: partial credit where exact reconstruction is all or nothing."""
    scores = [
        float(np.mean([i < len(b) and t == b[i] for i, t in enumerate(a)]))
        for a, b in zip(originals, decoded, strict=True)
        if a
    ]
    return float(np.mean(scores)) if scores else 0.0


def tanimoto_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Tanimoto similarity of fingerprint rows: Jaccard for 0/1 bits, its continuous form
    Σab / (Σa² + Σb² − Σab) for bit probabilities (a decoded fingerprint); 0 between two empty rows."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    common = a @ b.T
    union = np.square(a).sum(1)[:, None] + np.square(b).sum(1)[None, :] - common
    return np.divide(common, union, out=np.zeros_like(common), where=union > 0)


def neighbour_tanimoto(z: np.ndarray, fingerprints: np.ndarray, k: int = NEIGHBOURS, seed: int = 0) -> dict[str, float]:
    """Mean Tanimoto similarity between each molecule and its k nearest neighbours in the latent space (Euclidean),
    against the mean over as many random pairs: a latent space that organises chemistry has the first well above
    the second. At most MAX_QUERY_ROWS query rows (a seeded sample); neighbours are searched among all rows."""
    z = np.asarray(z, np.float64)
    n = len(z)
    if n < k + 2:
        return {}
    rng = np.random.default_rng(seed)
    queries = rng.choice(n, min(n, MAX_QUERY_ROWS), replace=False)
    d = np.square(z[queries]).sum(1)[:, None] + np.square(z).sum(1)[None, :] - 2.0 * z[queries] @ z.T
    d[np.arange(len(queries)), queries] = np.inf
    nearest = np.argpartition(d, k, axis=1)[:, :k]
    sims = tanimoto_matrix(fingerprints[queries], fingerprints)
    neighbour = float(np.take_along_axis(sims, nearest, 1).mean())
    partners = rng.integers(0, n - 1, size=(len(queries), k))
    partners += partners >= queries[:, None]  # never a molecule with itself
    random = float(np.take_along_axis(sims, partners, 1).mean())
    return {"molecules_neighbour_tanimoto": neighbour, "molecules_random_tanimoto": random}


def property_probe_r2(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """R² on the test rows of a ridge regression (penalty chosen by cross-validation on the train rows, features
    standardised) from x to y; rows with a missing y are left out."""
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    keep_train, keep_test = np.isfinite(y_train), np.isfinite(y_test)
    if keep_train.sum() < 5 or keep_test.sum() < 2:
        return float("nan")
    probe = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    probe.fit(np.asarray(x_train, np.float64)[keep_train], y_train[keep_train])
    return float(r2_score(y_test[keep_test], probe.predict(np.asarray(x_test, np.float64)[keep_test])))
