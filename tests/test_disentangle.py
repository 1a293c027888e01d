"""Disentanglement metrics: equal to google-research/disentanglement_lib's on the same inputs, and behaving like
theirs on ideal and useless codes.

Reference values (REFERENCE below) were produced by disentanglement_lib's own metric code, run in this project's
virtual environment (scikit-learn 1.9.1, NumPy 2.4.6, SciPy 1.17.1) on the inputs `fixed_inputs()` and
`moments()` of this file:
`disentanglement_lib/evaluation/metrics/{utils,mig,dci,sap_score,modularity_explicitness}.py` at commit
86a644d4ed35c771560dc3360756363d35477357 and `{factor_vae,beta_vae}.py` at a070670e6589ed45c0b0bd95ea8913e7067eb3ae,
with only the irrelevant parts stubbed (gin's decorators, with the unsupervised study's bindings: histogram
discretizer with 20 bins, `prune_dims.threshold = 0.05`; absl logging). Their `compute_*` functions were called on a
ground-truth object that hands out the rows of `fixed_inputs()` in order (first the 400 training rows, then the 200
test rows) with the identity as representation, and, for FactorVAE and β-VAE, on our `ShapesGroundTruth` with
`moments` as representation. DCI's gradient-boosted trees were seeded (`random_state=0` for each factor, as ours
are by default): theirs leave it None, so their DCI moves with NumPy's global state (on these
inputs, by up to 4e-3 over 5 global seeds).
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from latent.analysis.metrics import (
    as_random_state,
    beta_vae_score,
    dci,
    dci_completeness,
    dci_disentanglement,
    disentanglement_scores,
    factorvae_score,
    histogram_discretize,
    mig,
    modularity_explicitness,
    modularity_from_mi,
    sap,
    split_rows,
)
from latent.errors import DataError, LatentError
from latent.explore.disentangle import (
    ShapesGroundTruth,
    load_codes_and_factors,
    model_representation,
    table_disentanglement_scores,
)

REFERENCE = {
    "dci_disentanglement": 0.5206253958872081,
    "dci_completeness": 0.5019502821044224,
    "dci_informativeness_train": 0.981875,
    "dci_informativeness_test": 0.73875,
    "mig": 0.4939704546885708,
    "sap": 0.27625,
    "sap_continuous": 0.6347298462668891,
    "modularity": 0.8161874628987555,
    "explicitness_train": 0.8995153899917491,
    "explicitness_test": 0.9104412351822513,
    "factorvae_train_accuracy": 0.71,
    "factorvae_eval_accuracy": 0.6,
    "beta_vae_train_accuracy": 0.66,
    "beta_vae_eval_accuracy": 0.64,
}
N_TRAIN, N_TEST = 400, 200
FACTORVAE_ARGS = {"batch_size": 32, "num_train": 100, "num_eval": 60, "num_variance_estimate": 400}
BETA_VAE_ARGS = {"batch_size": 16, "num_train": 150, "num_eval": 75}


def fixed_inputs() -> tuple[np.ndarray, np.ndarray]:
    """600 rows: 4 factors with 2, 3, 4, 5 values; 6 codes: noisy monotone transforms of factors 0, 1 and 3, one
    code mixing factors 2 and 3, two pure-noise codes."""
    rng = np.random.default_rng(20240601)
    n = N_TRAIN + N_TEST
    factors = np.stack([rng.integers(s, size=n) for s in (2, 3, 4, 5)], axis=1)
    e = rng.normal(size=(n, 6))
    codes = np.stack(
        [
            np.exp(factors[:, 0] / 3 + 0.3 * e[:, 0]),
            np.tanh((factors[:, 1] - 1.0) / 2) + 0.1 * e[:, 1],
            factors[:, 2] + 0.3 * factors[:, 3] + 0.5 * e[:, 2],
            factors[:, 3] ** 1.5 + e[:, 3],
            e[:, 4],
            3 * e[:, 5] + 1,
        ],
        axis=1,
    )
    return codes, factors


_GRID = (np.mgrid[0:64, 0:64] / 63.0).reshape(2, -1)  # (y, x) of each pixel
_PROJECTION = np.random.default_rng(7).normal(size=(4096, 2))


def moments(observations: np.ndarray) -> np.ndarray:
    """A deterministic representation of shapes images: centroid x and y, area, spread in x, two random features."""
    img = np.asarray(observations, np.float64).reshape(len(observations), -1)
    area = img.sum(1)
    cy, cx = (img @ _GRID[0]) / area, (img @ _GRID[1]) / area
    spread = (img * (_GRID[1][None, :] - cx[:, None]) ** 2).sum(1) / area
    return np.column_stack([cx, cy, area / 1000.0, spread * 10, np.tanh(img @ _PROJECTION / 30.0)])


# ---- equal to disentanglement_lib ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_table_metrics_equal_disentanglement_lib():
    codes, factors = fixed_inputs()
    ct, ft, cs, fs = codes[:N_TRAIN], factors[:N_TRAIN], codes[N_TRAIN:], factors[N_TRAIN:]
    got = {
        **mig(ct, ft),
        **dci(ct, ft, cs, fs),
        **sap(ct, ft, cs, fs),
        "sap_continuous": sap(ct, ft, cs, fs, continuous_factors=True)["sap"],
        **modularity_explicitness(ct, ft, cs, fs),
    }
    for key in ["mig", "sap", "sap_continuous", "modularity", *(k for k in got if k.startswith("dci"))]:
        assert got[key] == pytest.approx(REFERENCE[key], abs=1e-9), key
    for key in ["explicitness_train", "explicitness_test"]:  # standardisation sums in another order: ~1e-16
        assert got[key] == pytest.approx(REFERENCE[key], abs=1e-6), key


@pytest.mark.integration
def test_interventional_metrics_equal_disentanglement_lib():
    gt = ShapesGroundTruth()
    fv = factorvae_score(gt, moments, np.random.RandomState(3), **FACTORVAE_ARGS)
    bv = beta_vae_score(gt, moments, np.random.RandomState(4), **BETA_VAE_ARGS)
    got = {**fv, **bv}
    for key in [
        "factorvae_train_accuracy",
        "factorvae_eval_accuracy",
        "beta_vae_train_accuracy",
        "beta_vae_eval_accuracy",
    ]:
        assert got[key] == pytest.approx(REFERENCE[key], abs=1e-9), key
    assert fv["factorvae_num_active_dims"] <= 6


# ---- the importance-matrix scores, as disentanglement_lib's unit tests ----------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("matrix", "disentanglement", "completeness", "modularity"),
    [
        (np.diag(5.0 * np.ones(5)), 1.0, 1.0, 1.0),
        (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 1.0, 1.0, 2.0 / 3.0),
        (np.zeros((10, 10)), 0.0, 0.0, 0.0),
        (np.vstack([np.diag(5.0 * np.ones(5))] * 2), 1.0, 1.0 - np.log(2) / np.log(10), 1.0),
        (np.diag(5.0 * np.ones(5))[:2, :], 1.0, 1.0, 1.0),
        (np.hstack([np.diag(5.0 * np.ones(5))] * 2), 1.0 - np.log(2) / np.log(10), 1.0, 1.0 - 1.0 / 9),
    ],
    ids=["diagonal", "empty_codes", "zero", "redundant_codes", "missed_factors", "one_code_two_factors"],
)
def test_importance_scores(matrix, disentanglement, completeness, modularity):
    assert dci_disentanglement(matrix) == pytest.approx(disentanglement, abs=1e-7)
    assert dci_completeness(matrix) == pytest.approx(completeness, abs=1e-7)
    assert modularity_from_mi(matrix) == pytest.approx(modularity, abs=1e-7)


@pytest.mark.unit
def test_histogram_discretize_puts_the_maximum_in_the_last_bin():
    codes = np.linspace(0.0, 1.0, 101)[:, None]
    bins = histogram_discretize(codes, 20)
    assert bins.min() == 1 and bins.max() == 20 and bins[-1, 0] == 20


# ---- ideal and useless codes -----------------------------------------------------------------------------------


def _identity_and_noise(n: int = 1200, seed: int = 0):
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(s, size=n) for s in (4, 5, 6)], axis=1)
    return factors.astype(np.float64), rng.normal(size=(n, 3)), factors


@pytest.mark.integration
def test_identity_code_scores_high_and_noise_scores_low():
    identity, noise, factors = _identity_and_noise()
    good = disentanglement_scores(identity, factors, num_train=800, num_test=400)
    bad = disentanglement_scores(noise, factors, num_train=800, num_test=400)
    assert good["mig"] > 0.95 and bad["mig"] < 0.05
    assert good["dci_disentanglement"] > 0.9 and good["dci_completeness"] > 0.9
    assert bad["dci_disentanglement"] < 0.1 and bad["dci_completeness"] < 0.1
    assert good["dci_informativeness_test"] > 0.99
    assert bad["dci_informativeness_test"] < 0.35
    assert good["modularity"] > 0.9 and good["explicitness_test"] > 0.75
    assert bad["explicitness_test"] < 0.6
    assert good["sap"] > bad["sap"] + 0.15 and bad["sap"] < 0.05
    train, test = split_rows(len(factors), 0, 800, 400)
    continuous = sap(identity[train], factors[train], identity[test], factors[test], continuous_factors=True)
    assert continuous["sap"] > 0.9


@pytest.mark.integration
def test_duplicated_codes_halve_completeness_and_zero_mig():
    identity, _, factors = _identity_and_noise()
    twice = np.hstack([identity, identity])
    scores = disentanglement_scores(twice, factors, num_train=800, num_test=400, metrics=["mig", "dci"])
    assert scores["mig"] < 0.05
    assert scores["dci_disentanglement"] > 0.9
    assert abs(scores["dci_completeness"] - (1 - np.log(2) / np.log(6))) < 0.1


class _FactorsAsObservations(ShapesGroundTruth):
    """The shapes factors, with the factors themselves as observations (no rendering): an ideal representation."""

    def sample_observations_from_factors(self, factors, random_state=None):
        return np.asarray(factors, dtype=np.float64)


@pytest.mark.unit
def test_interventional_scores_of_the_factors_themselves_and_of_noise():
    gt = _FactorsAsObservations()
    ideal = factorvae_score(gt, lambda x: x, 0, batch_size=64, num_train=300, num_eval=200, num_variance_estimate=2000)
    assert ideal["factorvae_eval_accuracy"] > 0.95 and ideal["factorvae_num_active_dims"] == 5
    beta = beta_vae_score(gt, lambda x: x, 0, batch_size=16, num_train=400, num_eval=200)
    assert beta["beta_vae_eval_accuracy"] > 0.9
    rng = np.random.default_rng(1)

    def noise(x):
        return rng.normal(size=(len(x), 6))

    chance = factorvae_score(gt, noise, 0, batch_size=64, num_train=300, num_eval=300, num_variance_estimate=2000)
    assert chance["factorvae_eval_accuracy"] < 0.35  # 5 factors: 0.2 is chance
    beta = beta_vae_score(gt, noise, 0, batch_size=16, num_train=400, num_eval=200)
    assert beta["beta_vae_eval_accuracy"] < 0.35


@pytest.mark.unit
def test_collapsed_latents_are_pruned():
    gt = _FactorsAsObservations()
    scores = factorvae_score(
        gt,
        lambda x: np.hstack([x, np.full((len(x), 2), 0.5)]),
        0,
        batch_size=32,
        num_train=50,
        num_eval=50,
        num_variance_estimate=500,
    )
    assert scores["factorvae_num_active_dims"] == 5
    none = factorvae_score(gt, np.zeros_like, 0, batch_size=8, num_train=5, num_eval=5, num_variance_estimate=50)
    assert none == {"factorvae_train_accuracy": 0.0, "factorvae_eval_accuracy": 0.0, "factorvae_num_active_dims": 0.0}


# ---- ground truth, random states, models, tables -------------------------------------------------------------


@pytest.mark.unit
def test_shapes_ground_truth_samples_the_grid_and_renders_model_inputs():
    gt = ShapesGroundTruth()
    factors = gt.sample_factors(500, np.random.RandomState(0))
    assert factors.dtype == np.int64 and factors.shape == (500, 5)
    assert (factors.min(0) == 0).all() and (factors.max(0) < np.array(gt.factor_sizes)).all()
    obs = gt.sample_observations_from_factors(factors[:8])
    assert obs.dtype == np.float32 and obs.shape == (8, 4096) and set(np.unique(obs)) <= {0.0, 1.0}
    again = ShapesGroundTruth().sample_factors(500, np.random.RandomState(0))
    assert np.array_equal(factors, again)


@pytest.mark.unit
def test_random_states_int_generator_and_legacy():
    assert isinstance(as_random_state(0), np.random.RandomState)
    a = as_random_state(np.random.default_rng(5)).randint(1000, size=4)
    b = as_random_state(np.random.default_rng(5)).randint(1000, size=4)
    assert np.array_equal(a, b)
    gt = _FactorsAsObservations()
    args = {"batch_size": 16, "num_train": 20, "num_eval": 20, "num_variance_estimate": 200}
    assert factorvae_score(gt, lambda x: x, 3, **args) == factorvae_score(
        gt, lambda x: x, np.random.RandomState(3), **args
    )
    gen = [factorvae_score(gt, lambda x: x, np.random.default_rng(9), **args) for _ in range(2)]
    assert gen[0] == gen[1]


@pytest.mark.unit
def test_model_representation_returns_posterior_means():
    import torch

    from latent.models import create_model

    torch.manual_seed(0)
    model = create_model("vae_mlp", input_dim=4096, latent_dim=4, hidden_dims=(32,)).eval()
    gt = ShapesGroundTruth()
    obs = gt.sample_observations(10, np.random.RandomState(0))
    represent = model_representation(model, batch_size=3)
    codes = represent(obs)
    with torch.no_grad():
        expected = model.encode(torch.from_numpy(obs))[0].numpy()
    assert codes.shape == (10, 4) and codes.dtype == np.float32
    np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-6)
    scores = factorvae_score(gt, represent, 0, batch_size=16, num_train=10, num_eval=10, num_variance_estimate=64)
    assert 0.0 <= scores["factorvae_eval_accuracy"] <= 1.0


@pytest.mark.integration
def test_disentanglement_scores_is_the_metrics_on_a_seeded_split():
    codes, factors = fixed_inputs()
    scores = disentanglement_scores(codes, factors, seed=3, num_train=None, num_test=None)
    assert set(scores) == {
        "mig",
        "dci_disentanglement",
        "dci_completeness",
        "dci_informativeness_train",
        "dci_informativeness_test",
        "sap",
        "modularity",
        "explicitness_train",
        "explicitness_test",
    }
    assert all(isinstance(v, float) for v in scores.values())
    train, test = split_rows(len(codes), 3, None, None)
    assert len(train) == 400 and len(test) == 200 and not set(train) & set(test)
    assert scores["mig"] == mig(codes[train], factors[train])["mig"]
    assert scores["sap"] == sap(codes[train], factors[train], codes[test], factors[test])["sap"]
    assert disentanglement_scores(codes, factors, seed=3, num_train=None, num_test=None) == scores
    assert split_rows(15000, 0)[0].size == 10000 and split_rows(15000, 0)[1].size == 5000
    small_train, small_test = split_rows(300, 0)
    assert small_train.size == 200 and small_test.size == 100


@pytest.mark.unit
def test_bad_inputs_are_one_clear_error():
    codes, factors = fixed_inputs()
    with pytest.raises(DataError, match="rows"):
        mig(codes[:10], factors[:11])
    with pytest.raises(DataError, match="at least 2 latent"):
        mig(codes[:, :1], factors)
    constant = factors.copy()
    constant[:, 2] = 1
    with pytest.raises(DataError, match="factor 2 takes a single value"):
        dci(codes, constant, codes, constant)
    with pytest.raises(DataError, match="integer"):
        mig(codes, factors + 0.5)
    with pytest.raises(ValueError, match="unknown"):
        disentanglement_scores(codes, factors, metrics=["mig", "irs"])


def _write_table(path, with_factors: bool):
    from latent.tables import TABLE_JSON, LatentTableWriter

    rng = np.random.default_rng(0)
    n = 300
    factors = np.stack([rng.integers(s, size=n) for s in (3, 4)], axis=1)
    codes = np.column_stack([factors + 0.1 * rng.normal(size=(n, 2)), rng.normal(size=n)]).astype(np.float32)
    extra = [
        pa.field("shape_idx", pa.int64()),
        pa.field("scale_idx", pa.int64()),
        pa.field("scale_value", pa.float32()),
    ]
    writer = LatentTableWriter(path, 3, {}, extra if with_factors else None)
    ids = [f"row-{i:04d}" for i in range(n)]
    for split, rows in (("train", slice(0, 200)), ("test", slice(200, n))):
        columns = {
            "shape_idx": pa.array(factors[rows, 0]),
            "scale_idx": pa.array(factors[rows, 1]),
            "scale_value": pa.array(factors[rows, 1].astype(np.float32)),
        }
        writer.write(
            split,
            pa.array(ids[rows]),
            pa.array(factors[rows, 0]),
            codes[rows],
            np.zeros_like(codes[rows]),
            np.zeros(len(codes[rows]), np.float32),
            columns if with_factors else None,
        )
    writer.close()
    (path / TABLE_JSON).write_text(json.dumps({"latent_dim": 3}))
    return codes, factors


@pytest.mark.unit
def test_codes_and_factors_from_a_latent_table(tmp_path):
    codes, factors = _write_table(tmp_path / "table", with_factors=True)
    got_codes, got_factors, names = load_codes_and_factors(tmp_path / "table")
    assert names == ["shape", "scale"]
    assert got_factors.dtype == np.int64
    np.testing.assert_array_equal(got_codes, codes)  # ids sort in row order here
    np.testing.assert_array_equal(got_factors, factors)
    train_codes, _, _ = load_codes_and_factors(tmp_path / "table", splits=("train",))
    assert len(train_codes) == 200
    scores = table_disentanglement_scores(tmp_path / "table", metrics=["mig"])
    assert scores["mig"] > 0.5


@pytest.mark.unit
def test_a_table_without_factors_is_a_latent_error(tmp_path):
    _write_table(tmp_path / "digits", with_factors=False)
    with pytest.raises(LatentError, match=r"digits: the latent table has no ground-truth factor columns"):
        load_codes_and_factors(tmp_path / "digits")
