"""Disentanglement metrics: how well each ground-truth factor of variation is captured by one latent dimension.

The estimators and their defaults are those of google-research/disentanglement_lib (Locatello et al., 2019,
"Challenging common assumptions in the unsupervised learning of disentangled representations"), so that a number
computed here equals theirs on the same inputs; `tests/test_disentangle.py` checks that against values produced by
their own code. The layout differs: disentanglement_lib passes (n_latents × n_samples) arrays, these functions take
the row-major tables analysts have:

- `codes`: (n_samples, n_latents) float, e.g. the `z_mean` column of a latent table;
- `factors`: (n_samples, n_factors) int, one discrete ground-truth factor per column (e.g. the `*_idx` columns the
  `shapes` source carries into latent tables).

Metrics of a fixed table of codes and factors (each returns a dict of floats):

| function | disentanglement_lib | estimator |
|---|---|---|
| `mig` | `mig._compute_mig` | codes discretised into 20-bin histograms, discrete MI, top-two gap / H(factor) |
| `dci` | `dci._compute_dci` | `GradientBoostingClassifier()` importances; disentanglement, completeness, accuracies |
| `sap` | `sap_score._compute_sap` | per latent × factor `LinearSVC(C=0.01, class_weight="balanced")` accuracy, top-two gap |
| `modularity_explicitness` | `modularity_explicitness.compute_modularity_explicitness` | discretised MI; `LogisticRegression()` ROC-AUC |
| `disentanglement_scores` | — | all four on one table, split into train/test rows with a seed |

Interventional metrics, which sample factors, render observations and encode them (`factorvae_score`,
`beta_vae_score`), take a ground-truth data object (`ShapesGroundTruth` for our dSprites grid) and a representation
function (observations -> codes; `model_representation` makes one from a trained model).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from latent.errors import DataError, LatentError

# The defaults of disentanglement_lib's unsupervised study (config/unsupervised_study_v1/metric_configs/*.gin).
NUM_BINS = 20
NUM_TRAIN = 10000
NUM_TEST = 5000
FACTORVAE_BATCH_SIZE = 64
FACTORVAE_NUM_VARIANCE_ESTIMATE = 10000
FACTORVAE_PRUNE_THRESHOLD = 0.05
SHAPES_FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES_FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
ALL_METRICS = ("mig", "dci", "sap", "modularity")

RepresentationFunction = Callable[[np.ndarray], np.ndarray]
RandomStateLike = np.random.RandomState | np.random.Generator | int | None


# ---- inputs ---------------------------------------------------------------------------------------------------


def _as_codes(codes: Any, what: str = "codes") -> np.ndarray:
    """(n, k) numeric array, dtype kept (the histogram's bin edges follow it, as in disentanglement_lib)."""
    arr = np.asarray(codes)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{what}: expected an (n_samples, n_latents) array, got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{what}: expected numbers, got dtype {arr.dtype}")
    if arr.dtype.kind in "iub":
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise DataError(f"{what}: non-finite value at row {row}")
    return arr


def _as_factors(factors: Any, what: str = "factors", discrete: bool = True) -> np.ndarray:
    """(n, f) integer array; whole-valued floats are accepted as integers."""
    arr = np.asarray(factors)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{what}: expected an (n_samples, n_factors) array, got shape {arr.shape}")
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind != "f" or not np.isfinite(arr).all():
        raise DataError(f"{what}: expected integer factor indices, got dtype {arr.dtype}")
    if not discrete:
        return arr
    if not np.array_equal(arr, np.round(arr)):
        raise DataError(f"{what}: expected integer factor indices (discrete factors), got non-integer values")
    return arr.astype(np.int64)


def _check_pair(codes: np.ndarray, factors: np.ndarray, what: str) -> None:
    if len(codes) != len(factors):
        raise DataError(f"{what}: codes have {len(codes)} rows but factors have {len(factors)}")
    if len(codes) < 2:
        raise DataError(f"{what}: at least 2 rows are needed, got {len(codes)}")


def _check_varying(factors: np.ndarray, what: str) -> None:
    for j in range(factors.shape[1]):
        if np.unique(factors[:, j]).size < 2:
            raise DataError(f"{what}: factor {j} takes a single value; a metric needs at least two")


def _need_two_latents(codes: np.ndarray, metric: str) -> None:
    if codes.shape[1] < 2:
        raise DataError(f"{metric}: the gap between the top two latents needs at least 2 latent dimensions")


# ---- shared estimators (disentanglement_lib's evaluation/metrics/utils.py) --------------------------------------


def histogram_discretize(codes: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """Each latent (column) into `num_bins` equal-width bins over its own range: np.digitize against the left
    edges of np.histogram's bins (so the maximum falls in the last bin), as disentanglement_lib does."""
    codes = np.asarray(codes)
    out = np.zeros(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram(codes[:, i], num_bins)[1][:-1]
        out[:, i] = np.digitize(codes[:, i], edges)
    return out


def discrete_mutual_info(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(n_latents, n_factors) mutual information in nats, sklearn's `mutual_info_score` on the labels."""
    from sklearn.metrics import mutual_info_score

    m = np.zeros((discrete_codes.shape[1], factors.shape[1]))
    for i in range(discrete_codes.shape[1]):
        for j in range(factors.shape[1]):
            m[i, j] = mutual_info_score(factors[:, j], discrete_codes[:, i])
    return m


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """(n_factors,) entropy in nats of each factor, as I(y; y)."""
    from sklearn.metrics import mutual_info_score

    return np.array([mutual_info_score(factors[:, j], factors[:, j]) for j in range(factors.shape[1])])


# ---- MIG (Chen et al., 2018) ----------------------------------------------------------------------------------


def mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = NUM_BINS) -> dict[str, float]:
    """Mutual information gap: for each factor, the MI of the most informative latent minus that of the second,
    divided by the factor's entropy; averaged over factors. disentanglement_lib's `discrete_mig` (20 bins).

    Returns {"mig": float}."""
    codes, factors = _as_codes(codes), _as_factors(factors)
    _check_pair(codes, factors, "mig")
    _check_varying(factors, "mig")
    _need_two_latents(codes, "mig")
    m = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)
    entropy = discrete_entropy(factors)
    top = np.sort(m, axis=0)[::-1]
    return {"mig": float(np.mean((top[0] - top[1]) / entropy))}


# ---- DCI (Eastwood & Williams, 2018) ----------------------------------------------------------------------------


def importance_matrix_gbt(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    random_state: int | None = 0,
) -> tuple[np.ndarray, float, float]:
    """(n_latents, n_factors) feature importances of one `GradientBoostingClassifier()` per factor, and the mean
    train and test accuracies of those classifiers."""
    from sklearn.ensemble import GradientBoostingClassifier

    importance = np.zeros((codes_train.shape[1], factors_train.shape[1]), dtype=np.float64)
    train_acc, test_acc = [], []
    for j in range(factors_train.shape[1]):
        model = GradientBoostingClassifier(random_state=random_state)
        model.fit(codes_train, factors_train[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(codes_train) == factors_train[:, j]))
        test_acc.append(np.mean(model.predict(codes_test) == factors_test[:, j]))
    return importance, float(np.mean(train_acc)), float(np.mean(test_acc))


def _entropy_base(p: np.ndarray, base: int) -> np.ndarray:
    """scipy.stats.entropy along axis 0 (columns normalised to sum 1), in the given base."""
    from scipy.stats import entropy

    return entropy(p, base=base)


def dci_disentanglement(importance: np.ndarray) -> float:
    """Σ_latents (1 − H_factors(P_latent)) · (latent's share of the total importance)."""
    per_code = 1.0 - _entropy_base(importance.T + 1e-11, importance.shape[1])
    weights = importance if importance.sum() != 0.0 else np.ones_like(importance)
    return float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))


def dci_completeness(importance: np.ndarray) -> float:
    """Σ_factors (1 − H_latents(P_factor)) · (factor's share of the total importance)."""
    per_factor = 1.0 - _entropy_base(importance + 1e-11, importance.shape[0])
    weights = importance if importance.sum() != 0.0 else np.ones_like(importance)
    return float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))


def dci(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    random_state: int | None = 0,
) -> dict[str, float]:
    """Disentanglement, completeness and informativeness from gradient-boosted-tree importances (100 trees of
    depth 3 per factor and class: scikit-learn's defaults, as in disentanglement_lib).

    `random_state` seeds the trees; disentanglement_lib leaves it None (NumPy's global state). With the default
    `subsample=1.0` and all features at each split it only breaks ties between equally good splits.

    Returns {"dci_disentanglement", "dci_completeness", "dci_informativeness_train", "dci_informativeness_test"}
    (informativeness is the classifiers' mean accuracy)."""
    codes_train, factors_train = _as_codes(codes_train, "codes_train"), _as_factors(factors_train, "factors_train")
    codes_test, factors_test = _as_codes(codes_test, "codes_test"), _as_factors(factors_test, "factors_test")
    _check_pair(codes_train, factors_train, "dci (train)")
    _check_pair(codes_test, factors_test, "dci (test)")
    _check_varying(factors_train, "dci (train)")
    importance, train_acc, test_acc = importance_matrix_gbt(
        codes_train, factors_train, codes_test, factors_test, random_state
    )
    return {
        "dci_disentanglement": dci_disentanglement(importance),
        "dci_completeness": dci_completeness(importance),
        "dci_informativeness_train": train_acc,
        "dci_informativeness_test": test_acc,
    }


# ---- SAP (Kumar et al., 2018) -------------------------------------------------------------------------------


def sap_score_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    continuous_factors: bool = False,
) -> np.ndarray:
    """(n_latents, n_factors): for discrete factors the test accuracy of `LinearSVC(C=0.01,
    class_weight="balanced")` predicting the factor from that one latent; for continuous factors the squared
    correlation on the training rows (0 for a latent with variance ≤ 1e-12)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    scores = np.zeros((codes_train.shape[1], factors_train.shape[1]))
    for i in range(codes_train.shape[1]):
        for j in range(factors_train.shape[1]):
            mu, y = codes_train[:, i], factors_train[:, j]
            if continuous_factors:
                cov = np.cov(mu, y, ddof=1)
                scores[i, j] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    classifier = LinearSVC(C=0.01, class_weight="balanced").fit(mu[:, None], y)
                scores[i, j] = np.mean(classifier.predict(codes_test[:, i][:, None]) == factors_test[:, j])
    return scores


def sap(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    continuous_factors: bool = False,
) -> dict[str, float]:
    """Separated attribute predictability: per factor, the best latent's score minus the second best's (scores of
    `sap_score_matrix`), averaged over factors. Returns {"sap": float}."""
    codes_train = _as_codes(codes_train, "codes_train")
    codes_test = _as_codes(codes_test, "codes_test")
    factors_train = _as_factors(factors_train, "factors_train", discrete=not continuous_factors)
    factors_test = _as_factors(factors_test, "factors_test", discrete=not continuous_factors)
    _check_pair(codes_train, factors_train, "sap (train)")
    _check_pair(codes_test, factors_test, "sap (test)")
    _need_two_latents(codes_train, "sap")
    if not continuous_factors:
        _check_varying(factors_train, "sap (train)")
    matrix = np.sort(sap_score_matrix(codes_train, factors_train, codes_test, factors_test, continuous_factors), 0)
    return {"sap": float(np.mean(matrix[-1] - matrix[-2]))}


# ---- modularity and explicitness (Ridgeway & Mozer, 2018) -----------------------------------------------------


def modularity_from_mi(mutual_information: np.ndarray) -> float:
    """Mean over latents of 1 − (Σ_f m² − max_f m²) / (max_f m² · (n_factors − 1)); 0 for a latent with no MI."""
    squared = np.square(mutual_information)
    top = np.max(squared, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - (np.sum(squared, axis=1) - top) / (top * (squared.shape[1] - 1.0))
    score[top == 0.0] = 0.0
    return float(np.mean(score))


def _explicitness_auc(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray):
    """ROC-AUC (macro over one-vs-rest class indicators) of `LogisticRegression()` on the train and test rows.

    disentanglement_lib binarises each set's labels on their own classes, which fails when a class is missing
    from one set; here the classes scored are the classifier's that occur in the set (the same when all occur)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression().fit(x_train, y_train)

    def auc(x: np.ndarray, y: np.ndarray) -> float:
        proba = clf.predict_proba(x)
        keep = np.isin(clf.classes_, y)
        indicator = (y[:, None] == clf.classes_[keep][None, :]).astype(np.int64)
        return float(roc_auc_score(indicator, proba[:, keep]))

    return auc(x_train, y_train), auc(x_test, y_test)


def modularity_explicitness(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    num_bins: int = NUM_BINS,
) -> dict[str, float]:
    """Modularity (from the MI of the 20-bin-discretised training codes) and explicitness (ROC-AUC of a logistic
    regression per factor on the codes standardised with the training mean and std, averaged over factors).

    Returns {"modularity", "explicitness_train", "explicitness_test"}."""
    codes_train, factors_train = _as_codes(codes_train, "codes_train"), _as_factors(factors_train, "factors_train")
    codes_test, factors_test = _as_codes(codes_test, "codes_test"), _as_factors(factors_test, "factors_test")
    _check_pair(codes_train, factors_train, "modularity_explicitness (train)")
    _check_pair(codes_test, factors_test, "modularity_explicitness (test)")
    _check_varying(factors_train, "modularity_explicitness (train)")
    mi = discrete_mutual_info(histogram_discretize(codes_train, num_bins), factors_train)
    mean, std = codes_train.mean(axis=0), codes_train.std(axis=0)
    if np.any(std == 0):
        raise DataError(f"modularity_explicitness: latent {int(np.flatnonzero(std == 0)[0])} is constant")
    train_norm, test_norm = (codes_train - mean) / std, (codes_test - mean) / std
    per_factor = [
        _explicitness_auc(train_norm, factors_train[:, j], test_norm, factors_test[:, j])
        for j in range(factors_train.shape[1])
    ]
    return {
        "modularity": modularity_from_mi(mi),
        "explicitness_train": float(np.mean([a for a, _ in per_factor])),
        "explicitness_test": float(np.mean([b for _, b in per_factor])),
    }


# ---- every table metric at once -----------------------------------------------------------------------------


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
    codes, factors = _as_codes(codes), _as_factors(factors)
    _check_pair(codes, factors, "disentanglement_scores")
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


# ---- latent tables ------------------------------------------------------------------------------------------


def factor_columns(table_path: str | Path) -> list[str]:
    """The ground-truth factor columns (`<factor>_idx`) of a latent table, in table order."""
    from latent.tables import open_latent_dataset

    return [name for name in open_latent_dataset(table_path).schema.names if name.endswith("_idx")]


def load_codes_and_factors(
    table_path: str | Path, splits: tuple[str, ...] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(codes (n, k) float32 from `z_mean`, factors (n, f) int64 from the `*_idx` columns, factor names) of a
    latent table, rows ordered by id (one consistent version of the table). A LatentError if the table has no
    factor columns (its dataset has no ground truth, e.g. digits)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from latent.tables import _read_snapshot, read_table_info

    table_path = Path(table_path)
    read_table_info(table_path)
    names = factor_columns(table_path)
    if not names:
        raise LatentError(
            f"{table_path}: the latent table has no ground-truth factor columns (*_idx); disentanglement metrics "
            "need a dataset with factors, such as dataset.source=shapes"
        )
    _, table = _read_snapshot(table_path, ["id", "z_mean", *names])
    if splits:
        table = table.filter(pc.is_in(table.column("split"), pa.array(list(splits))))
    if table.num_rows == 0:
        raise LatentError(f"{table_path}: no rows in splits {list(splits or [])}")
    table = table.sort_by("id")
    from latent.data.arrow import arrow_to_vectors

    codes = arrow_to_vectors(table.column("z_mean"), np.float32)
    factors = np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in names]).astype(np.int64)
    return codes, factors, [n.removesuffix("_idx") for n in names]


def table_disentanglement_scores(
    table_path: str | Path, splits: tuple[str, ...] | None = None, seed: int = 0, **kwargs: Any
) -> dict[str, float]:
    """`disentanglement_scores` of a latent table's `z_mean` against its factor columns (all splits by default)."""
    codes, factors, _ = load_codes_and_factors(table_path, splits)
    return disentanglement_scores(codes, factors, seed=seed, **kwargs)


# ---- ground-truth data and representations for the interventional metrics ----------------------------------


class GroundTruthData(Protocol):
    """What the interventional metrics need of a dataset (disentanglement_lib's GroundTruthData)."""

    @property
    def num_factors(self) -> int: ...

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray: ...

    def sample_observations_from_factors(self, factors: np.ndarray, random_state: np.random.RandomState): ...

    def sample_observations(self, num: int, random_state: np.random.RandomState): ...


class ShapesGroundTruth:
    """The `shapes` source's dSprites grid as ground-truth data: factors (shape 3, scale 6, orientation 40,
    pos_x 32, pos_y 32) sampled uniformly, observations rendered with `render_shapes` and turned into model inputs
    (n, 4096) float32 by the dataset's `FeatureTransform` (pixels × 1.0 for shapes), exactly as training and
    encoding read a shapes dataset table. Sampling draws from the random state as disentanglement_lib's DSprites
    does (one `randint` per factor), so the same seed samples the same factors."""

    factor_sizes = SHAPES_FACTOR_SIZES
    factor_names = SHAPES_FACTOR_NAMES
    observation_shape = (64 * 64,)

    def __init__(self, transform: Any = None) -> None:
        from latent.data.dataset import FeatureTransform

        self.transform = transform if transform is not None else FeatureTransform(scale=1.0)

    @classmethod
    def from_dataset(cls, dataset_path: str | Path) -> ShapesGroundTruth:
        """With the feature transform recorded in a shapes dataset table's manifest."""
        from latent.data.dataset import read_dataset_info

        info = read_dataset_info(dataset_path)
        if info.feature_dim != 64 * 64:
            raise DataError(f"{dataset_path}: not a shapes dataset table (feature_dim {info.feature_dim}, not 4096)")
        return cls(info.transform)

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def factors_num_values(self) -> list[int]:
        return list(self.factor_sizes)

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        factors = np.zeros((num, self.num_factors), dtype=np.int64)
        for j, size in enumerate(self.factor_sizes):
            factors[:, j] = random_state.randint(size, size=num)
        return factors

    def sample_observations_from_factors(self, factors: np.ndarray, random_state: Any = None) -> np.ndarray:
        from latent.data.arrow import vectors_to_arrow
        from latent.data.sources import render_shapes

        pixels = render_shapes(np.asarray(factors, dtype=np.int64))
        return self.transform.apply(vectors_to_arrow(pixels))

    def sample(self, num: int, random_state: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        return self.sample(num, random_state)[1]


def model_representation(
    model: Any, tracking_uri: str | None = None, batch_size: int = 1024, device: str | None = None
) -> RepresentationFunction:
    """observations (n, ...) -> posterior means (n, latent_dim) float32 of a trained model: a module, a local model
    directory or an MLflow model URI (`models:/name/1`, `runs:/...`, with `tracking_uri`)."""
    import torch

    if isinstance(model, str | Path):
        from latent.models.io import load_logged_model

        model = load_logged_model(str(model), tracking_uri)
    model.eval()
    dev = torch.device(device) if device else next(model.parameters()).device

    def represent(observations: np.ndarray) -> np.ndarray:
        x = np.asarray(observations, dtype=np.float32).reshape(len(observations), -1)
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                mean, _ = model.encode(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])).to(dev))
                out.append(mean.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, model.config.latent_dim), np.float32)

    return represent


def as_random_state(random_state: RandomStateLike) -> np.random.RandomState:
    """A legacy RandomState (the sampling API disentanglement_lib uses): an int or None seeds one, a Generator
    seeds one from its stream, a RandomState is used as is."""
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if isinstance(random_state, np.random.Generator):
        return np.random.RandomState(int(random_state.integers(2**32)))
    return np.random.RandomState(random_state)


def _representations(observations: np.ndarray, represent: RepresentationFunction, batch_size: int) -> np.ndarray:
    """(n, k) codes of observations, `batch_size` at a time (disentanglement_lib's obtain_representation)."""
    parts = [np.asarray(represent(observations[i : i + batch_size])) for i in range(0, len(observations), batch_size)]
    return np.vstack(parts)


# ---- FactorVAE score (Kim & Mnih, 2018) -----------------------------------------------------------------------


def factorvae_score(
    ground_truth: GroundTruthData,
    represent: RepresentationFunction,
    random_state: RandomStateLike = 0,
    batch_size: int = FACTORVAE_BATCH_SIZE,
    num_train: int = NUM_TRAIN,
    num_eval: int = NUM_TEST,
    num_variance_estimate: int = FACTORVAE_NUM_VARIANCE_ESTIMATE,
    prune_threshold: float = FACTORVAE_PRUNE_THRESHOLD,
) -> dict[str, float]:
    """FactorVAE score: each vote fixes one random factor across a batch of `batch_size` samples, divides each
    latent's variance over that batch by its variance over `num_variance_estimate` samples, and votes (factor,
    latent of least normalised variance); the classifier is the majority vote per latent, fitted on `num_train`
    votes and scored on `num_eval` fresh ones. Latents whose std over the data is below `prune_threshold` (0.05,
    collapsed to the prior) are left out. Defaults and sampling order as in disentanglement_lib.

    Returns {"factorvae_train_accuracy", "factorvae_eval_accuracy", "factorvae_num_active_dims"} (the count of
    latents kept; disentanglement_lib's `num_active_dims` reports the length of its mask, i.e. every latent)."""
    rs = as_random_state(random_state)
    observations = ground_truth.sample_observations(num_variance_estimate, rs)
    global_variances = np.var(_representations(observations, represent, 64), axis=0, ddof=1)
    del observations
    active = np.flatnonzero(np.sqrt(global_variances) >= prune_threshold)
    if active.size == 0:
        return {"factorvae_train_accuracy": 0.0, "factorvae_eval_accuracy": 0.0, "factorvae_num_active_dims": 0.0}

    def votes(num_points: int) -> np.ndarray:
        counts = np.zeros((ground_truth.num_factors, global_variances.shape[0]), dtype=np.int64)
        for _ in range(num_points):
            factor = rs.randint(ground_truth.num_factors)
            factors = ground_truth.sample_factors(batch_size, rs)
            factors[:, factor] = factors[0, factor]
            codes = np.asarray(represent(ground_truth.sample_observations_from_factors(factors, rs)))
            local = np.var(codes, axis=0, ddof=1)
            counts[factor, active[np.argmin(local[active] / global_variances[active])]] += 1
        return counts

    train_votes = votes(num_train)
    classifier = np.argmax(train_votes, axis=0)
    columns = np.arange(train_votes.shape[1])
    train_accuracy = np.sum(train_votes[classifier, columns]) / np.sum(train_votes)
    eval_votes = votes(num_eval)
    eval_accuracy = np.sum(eval_votes[classifier, columns]) / np.sum(eval_votes)
    return {
        "factorvae_train_accuracy": float(train_accuracy),
        "factorvae_eval_accuracy": float(eval_accuracy),
        "factorvae_num_active_dims": float(active.size),
    }


# ---- β-VAE score (Higgins et al., 2017) ------------------------------------------------------------------------


def _beta_vae_points(
    ground_truth: GroundTruthData,
    represent: RepresentationFunction,
    batch_size: int,
    num_points: int,
    rs: np.random.RandomState,
) -> tuple[np.ndarray, np.ndarray]:
    points, labels = None, np.zeros(num_points, dtype=np.int64)
    for i in range(num_points):
        factor = rs.randint(ground_truth.num_factors)
        first = ground_truth.sample_factors(batch_size, rs)
        second = ground_truth.sample_factors(batch_size, rs)
        second[:, factor] = first[:, factor]
        obs1 = ground_truth.sample_observations_from_factors(first, rs)
        obs2 = ground_truth.sample_observations_from_factors(second, rs)
        feature = np.mean(np.abs(np.asarray(represent(obs1)) - np.asarray(represent(obs2))), axis=0)
        if points is None:
            points = np.zeros((num_points, feature.shape[0]))
        points[i], labels[i] = feature, factor
    return points, labels


def beta_vae_score(
    ground_truth: GroundTruthData,
    represent: RepresentationFunction,
    random_state: RandomStateLike = 0,
    batch_size: int = FACTORVAE_BATCH_SIZE,
    num_train: int = NUM_TRAIN,
    num_eval: int = NUM_TEST,
) -> dict[str, float]:
    """β-VAE score: each point fixes one random factor between two batches of `batch_size` samples and takes the
    mean absolute difference of their codes; a `LogisticRegression` predicts the fixed factor from it, trained on
    `num_train` points and scored on `num_eval` fresh ones. Defaults and sampling order as in disentanglement_lib.

    Returns {"beta_vae_train_accuracy", "beta_vae_eval_accuracy"}."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    rs = as_random_state(random_state)
    train_points, train_labels = _beta_vae_points(ground_truth, represent, batch_size, num_train, rs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(random_state=rs).fit(train_points, train_labels)
    train_accuracy = np.mean(model.predict(train_points) == train_labels)
    eval_points, eval_labels = _beta_vae_points(ground_truth, represent, batch_size, num_eval, rs)
    return {
        "beta_vae_train_accuracy": float(train_accuracy),
        "beta_vae_eval_accuracy": float(model.score(eval_points, eval_labels)),
    }


__all__ = [
    "ALL_METRICS",
    "SHAPES_FACTOR_SIZES",
    "ShapesGroundTruth",
    "as_random_state",
    "beta_vae_score",
    "dci",
    "disentanglement_scores",
    "evaluate_latent_space",
    "factor_columns",
    "factorvae_score",
    "load_codes_and_factors",
    "mig",
    "model_representation",
    "modularity_explicitness",
    "sap",
    "split_rows",
    "table_disentanglement_scores",
]


# ---- one evaluation of a latent space, as the report and `latent disentangle` run it ---------------------------

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


def is_shapes_dataset(dataset_path: str | Path) -> bool:
    import json

    manifest = Path(dataset_path) / "manifest.json"
    try:
        return json.loads(manifest.read_text()).get("source") == "shapes"
    except (OSError, ValueError):
        return False


def evaluate_latent_space(
    table_path: str | Path,
    model: Any | None = None,
    dataset_path: str | Path | None = None,
    seed: int = 0,
    budget: int | str = 1000,
    interventional: bool = True,
) -> dict[str, float]:
    """Every metric that applies to a latent table with factor columns: MIG, SAP, modularity/explicitness and DCI
    on its rows, plus the FactorVAE and β-VAE scores when the table comes from the `shapes` source and a model is
    given (they render fresh samples with fixed factors and encode them through the model). Keys as in
    `disentanglement_scores`, plus `factorvae_*` and `beta_vae_*`."""
    sizes = budget_sizes(budget)
    codes, factors, _ = load_codes_and_factors(table_path)
    out = disentanglement_scores(codes, factors, seed=seed, metrics=("mig", "sap", "modularity"), **sizes["scores"])
    out.update(disentanglement_scores(codes, factors, seed=seed, metrics=("dci",), **sizes["dci"]))
    if interventional and model is not None and dataset_path is not None and is_shapes_dataset(dataset_path):
        truth = ShapesGroundTruth.from_dataset(dataset_path)
        represent = model_representation(model)
        out.update(factorvae_score(truth, represent, random_state=seed, **sizes["interventional"]))
        out.update(beta_vae_score(truth, represent, random_state=seed, **sizes["interventional"]))
    return out
