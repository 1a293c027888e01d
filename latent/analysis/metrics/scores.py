"""Every table metric (MIG, DCI, SAP, modularity) on one table of codes and factors, and the sample budgets of an
evaluation."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from latent.analysis.metrics.dci import dci
from latent.analysis.metrics.mig import mig
from latent.analysis.metrics.modularity import modularity_explicitness
from latent.analysis.metrics.sap import sap
from latent.analysis.metrics.utils import NUM_BINS, NUM_TEST, NUM_TRAIN, as_codes, as_factors, check_pair
from latent.errors import DataError

ALL_METRICS = ("mig", "dci", "sap", "modularity")


def split_rows(n: int, seed: int = 0, num_train: int | None = NUM_TRAIN, num_test: int | None = NUM_TEST):
    """Disjoint (train, test) row indices of a table of n rows, seeded. disentanglement_lib draws 10,000 fresh
    training and 5,000 test samples; here rows are shuffled and those sizes taken when the table has enough rows,
    else (or when either is None) all rows are split in the same 2 : 1 proportion."""
    order = np.random.default_rng(seed).permutation(n)
    if num_train is not None and num_test is not None and num_train + num_test <= n:
        n_train, n_test = num_train, num_test
    else:
        share = num_train / (num_train + num_test) if num_train and num_test else NUM_TRAIN / (NUM_TRAIN + NUM_TEST)
        n_train = math.ceil(n * share)
        n_test = n - n_train
    if n_train < 2 or n_test < 1:
        raise DataError(f"disentanglement_scores: {n} rows are too few for a train/test split")
    return order[:n_train], order[n_train : n_train + n_test]


def disentanglement_scores(
    codes: np.ndarray,
    factors: np.ndarray,
    seed: int = 0,
    num_train: int | None = NUM_TRAIN,
    num_test: int | None = NUM_TEST,
    num_bins: int = NUM_BINS,
    metrics: Iterable[str] = ALL_METRICS,
) -> dict[str, float]:
    """Every non-interventional metric on one table of codes and factors, as one flat dict for logging:
    {"mig", "dci_disentanglement", "dci_completeness", "dci_informativeness_train", "dci_informativeness_test",
    "sap", "modularity", "explicitness_train", "explicitness_test"} (those of the chosen `metrics`).

    The rows are split with `split_rows(n, seed, num_train, num_test)` (None: all rows, 2 : 1); MIG and
    modularity use the training rows only, as disentanglement_lib computes them on its training sample. The seed
    also seeds DCI's trees."""
    chosen = list(metrics)
    unknown = sorted(set(chosen) - set(ALL_METRICS))
    if unknown:
        raise ValueError(f"metrics: unknown {unknown}; expected some of {list(ALL_METRICS)}")
    codes, factors = as_codes(codes), as_factors(factors)
    check_pair(codes, factors, "disentanglement_scores")
    train, test = split_rows(len(codes), seed, num_train, num_test)
    ct, ft, cs, fs = codes[train], factors[train], codes[test], factors[test]
    out: dict[str, float] = {}
    if "mig" in chosen:
        out.update(mig(ct, ft, num_bins))
    if "dci" in chosen:
        out.update(dci(ct, ft, cs, fs, random_state=seed))
    if "sap" in chosen:
        out.update(sap(ct, ft, cs, fs))
    if "modularity" in chosen:
        out.update(modularity_explicitness(ct, ft, cs, fs, num_bins))
    return out


# disentanglement_lib's sample sizes; a report uses fewer (`budget`), since DCI's gradient-boosted trees (one
# classifier per factor, up to 40 classes) and the interventional scores (64 to 128 rendered images per vote)
# cost minutes at these sizes on 2 cores.
FULL_BUDGET = {
    "scores": {"num_train": NUM_TRAIN, "num_test": NUM_TEST},
    "dci": {"num_train": NUM_TRAIN, "num_test": NUM_TEST},
    "interventional": {"num_train": NUM_TRAIN, "num_eval": NUM_TEST},
}


def budget_sizes(budget: int | str) -> dict[str, dict[str, int]]:
    """Sample sizes for `evaluate_latent_space`: "full" (disentanglement_lib's), or an integer n: DCI on n train
    and n/2 test rows, the interventional scores on n/2 training and n/4 evaluation votes (MIG, SAP and
    modularity always on up to 10,000 / 5,000 rows: they are cheap)."""
    if budget == "full":
        return FULL_BUDGET
    n = int(budget)
    if n < 8:
        raise ValueError(f"disentanglement budget: expected 'full' or an integer >= 8, got {budget!r}")
    return {
        "scores": FULL_BUDGET["scores"],
        "dci": {"num_train": n, "num_test": n // 2},
        "interventional": {"num_train": n // 2, "num_eval": n // 4},
    }
