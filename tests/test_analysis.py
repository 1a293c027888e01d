"""Moving in and measuring a latent space: interpolation, arithmetic, traversals, probes and CKA."""

from __future__ import annotations

import mlflow
import numpy as np
import pyarrow.parquet as pq
import pytest

from latent.analysis import (
    apply_vector,
    attribute_vector,
    interpolate,
    kl_per_dim,
    linear_cka,
    probe_accuracy,
    traversal_codes,
)
from latent.analysis.dr import TSNE_EXACT_NEIGHBORS_MAX, TSNE_FFT_THRESHOLD, fit_rows, pca, tsne, tsne_plan
from latent.errors import LatentError
from latent.explore.commands import write_arithmetic, write_interpolation, write_traversals
from latent.explore.compare import compare_tables
from latent.explore.probes import probe_table
from latent.explore.space import open_latent_space, resolve_table
from latent.query import select_ids
from latent.tables import load_latent_arrays
from latent.tracking import use_tracking_uri
from tests.helpers import app_error_line

pytestmark = pytest.mark.integration

# ---- pure functions ----------------------------------------------------------------------------------------------


def test_slerp_keeps_the_norm_of_equal_norm_ends_where_linear_cuts_the_corner():
    rng = np.random.default_rng(0)
    z0, z1 = rng.normal(size=16), rng.normal(size=16)
    z1 *= np.linalg.norm(z0) / np.linalg.norm(z1)
    spherical = interpolate(z0, z1, 11, slerp=True)
    linear = interpolate(z0, z1, 11)
    np.testing.assert_allclose(spherical[[0, -1]], [z0, z1], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(spherical, axis=1), np.linalg.norm(z0), rtol=1e-9)
    assert np.linalg.norm(linear[5]) < 0.9 * np.linalg.norm(z0)  # random 16-d vectors are nearly orthogonal


def test_slerp_norm_moves_monotonically_between_unequal_norms():
    z0, z1 = np.array([2.0, 0.0]), np.array([0.0, 1.0])
    norms = np.linalg.norm(interpolate(z0, z1, 21, slerp=True), axis=1)
    assert norms[0] == pytest.approx(2.0) and norms[-1] == pytest.approx(1.0)
    assert np.all(np.diff(norms) < 0)


def test_attribute_vector_moves_the_mean_of_one_group_onto_the_other():
    rng = np.random.default_rng(1)
    without = rng.normal(size=(50, 4))
    with_ = rng.normal(size=(70, 4)) + np.array([3.0, 0.0, -1.0, 0.0])
    v = attribute_vector(with_, without)
    moved = apply_vector(without, v, [0.0, 1.0])
    np.testing.assert_allclose(moved[:, 0], without)
    np.testing.assert_allclose(moved[:, 1].mean(0), with_.mean(0), atol=1e-12)
    with pytest.raises(LatentError):
        attribute_vector(with_[:0], without)


def test_traversal_sweeps_one_dimension_at_a_time_over_three_sigma():
    anchors = np.array([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]])
    sigma = np.array([1.0, 2.0, 0.5])
    grid = traversal_codes(anchors, [2, 0], sigma, 7)
    assert grid.shape == (2, 2, 7, 3)
    np.testing.assert_allclose(grid[0, 0, :, 2], 2.0 + np.linspace(-1.5, 1.5, 7))
    np.testing.assert_allclose(grid[0, 0, :, :2], np.broadcast_to(anchors[0, :2], (7, 2)))
    np.testing.assert_allclose(grid[1, 1, :, 0], np.linspace(-3, 3, 7))


def test_kl_per_dim_is_zero_for_the_prior_and_grows_with_information():
    n = 1000
    zero = kl_per_dim(np.zeros((n, 2)), np.zeros((n, 2)))
    np.testing.assert_allclose(zero, 0.0)
    informative = kl_per_dim(
        np.column_stack([np.random.default_rng(0).normal(size=n), np.zeros(n)]), np.full((n, 2), -2.0)
    )
    assert informative[0] > informative[1] > 0


def test_probes_read_separable_labels_and_not_noise():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(4), 150)
    centres = rng.normal(scale=6.0, size=(4, 5))
    z = centres[y] + rng.normal(size=(600, 5))
    tr, te = np.arange(0, 600, 2), np.arange(1, 600, 2)
    for method in ("logistic", "knn"):
        scores = probe_accuracy(z[tr], y[tr], z[te], y[te], [10, 100, None], method=method)
        assert set(scores) == {"10", "100", "all"}
        assert scores["all"] > 0.95, (method, scores)
        noise = probe_accuracy(
            rng.normal(size=(300, 5)), y[tr], rng.normal(size=(300, 5)), y[te], [None], method=method
        )
        assert noise["all"] < 0.45, (method, noise)


def test_linear_cka_is_one_for_itself_invariant_to_rotation_and_scale_and_low_for_noise():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(2000, 6)) @ rng.normal(size=(6, 6))
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert linear_cka(a, a) == pytest.approx(1.0)
    assert linear_cka(a, 3.5 * a @ rotation + 2.0) == pytest.approx(1.0)
    assert linear_cka(a, rng.normal(size=(2000, 6))) < 0.05
    assert linear_cka(a, a[:, :3]) < 1.0
    with pytest.raises(LatentError):
        linear_cka(a, a[:10])


def test_tsne_keeps_clusters_apart_and_neighbours_near():
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(4)
    centres = rng.normal(scale=8.0, size=(4, 10))
    labels = np.repeat(np.arange(4), 150)
    codes = centres[labels] + rng.normal(size=(600, 10))
    embedding = tsne(codes, perplexity=20.0, seed=0)
    assert embedding.shape == (600, 2) and np.isfinite(embedding).all()
    assert trustworthiness(codes, embedding, n_neighbors=10) > 0.9
    knn = KNeighborsClassifier(5).fit(embedding[::2], labels[::2])
    assert knn.score(embedding[1::2], labels[1::2]) == 1.0
    np.testing.assert_array_equal(embedding, tsne(codes, perplexity=20.0, seed=0))  # seeded, exact neighbours
    short = tsne(codes, perplexity=20.0, seed=0, n_iter=50)  # report.tsne_iterations: fewer, less converged
    assert np.isfinite(short).all() and not np.allclose(short, embedding)


def test_tsne_fitted_on_a_subset_places_the_other_rows_beside_their_cluster():
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(5)
    centres = rng.normal(scale=8.0, size=(4, 10))
    labels = np.repeat(np.arange(4), 200)
    codes = centres[labels] + rng.normal(size=(800, 10))
    keep = np.array([3, 500, 799])
    rows = fit_rows(800, 300, seed=0, keep=keep)
    assert len(rows) == 300 and set(keep) <= set(rows) and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(rows, fit_rows(800, 300, seed=0, keep=keep))
    np.testing.assert_array_equal(fit_rows(200, 300, seed=0), np.arange(200))
    embedding = tsne(codes, perplexity=20.0, seed=0, rows=rows)
    assert embedding.shape == (800, 2) and np.isfinite(embedding).all()
    placed = np.setdiff1d(np.arange(800), rows)
    knn = KNeighborsClassifier(5).fit(embedding[rows], labels[rows])
    assert knn.score(embedding[placed], labels[placed]) == 1.0
    np.testing.assert_array_equal(embedding[rows], tsne(codes[rows], perplexity=20.0, seed=0))


def test_tsne_plan_switches_gradient_and_neighbour_search_by_size():
    assert tsne_plan(2_000) == ("bh", "exact")
    assert tsne_plan(TSNE_FFT_THRESHOLD - 1)[0] == "bh"
    assert tsne_plan(TSNE_FFT_THRESHOLD) == ("fft", "exact")
    assert tsne_plan(TSNE_EXACT_NEIGHBORS_MAX + 1) == ("fft", "annoy")


# ---- on a real latent table, its model and MLflow ---------------------------------------------------------------


@pytest.fixture(scope="module")
def space(library_run):
    return open_latent_space(resolve_table(library_run.workspace, None), library_run.tracking.uri)


def test_arithmetic_on_a_table_with_a_known_answer(library_run, space):
    codes = load_latent_arrays(library_run.encode.table_path)
    sevens, ones = codes["label"] == 7, codes["label"] == 1
    ids = select_ids(library_run.workspace, library_run.encode.table_path, "label = 7")
    assert ids == sorted(codes["id"][sevens].tolist())
    result = write_arithmetic(
        space, library_run.workspace, "label = 7", "label = 1", None, 4, [0.0, 1.0], library_run.tracking
    )
    expected = codes["z_mean"][sevens].astype(np.float64).mean(0) - codes["z_mean"][ones].astype(np.float64).mean(0)
    np.testing.assert_allclose(result.facts["vector"], expected, rtol=1e-5, atol=1e-6)
    assert (result.facts["rows_plus"], result.facts["rows_minus"]) == (sevens.sum(), ones.sum())
    points = pq.read_table(result.points_path)
    assert points.num_rows == 4 * 2
    z = np.stack(points.column("z").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(z[1::2] - z[0::2], np.broadcast_to(expected, (4, len(expected))), atol=1e-5)
    assert result.image_path and result.image_path.endswith(".png")
    use_tracking_uri(library_run.tracking.uri)
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "analysis/arithmetic")]
    assert "analysis/arithmetic/arithmetic.png" in artifacts and "analysis/arithmetic/points.parquet" in artifacts


def test_arithmetic_predicates_are_read_only(library_run):
    table = library_run.encode.table_path
    for predicate in ("label = 1; DROP VIEW latents", "label = 1) UNION ALL (SELECT 'x' FROM read_csv('/etc/passwd')"):
        with pytest.raises(LatentError):
            select_ids(library_run.workspace, table, predicate)
    with pytest.raises(LatentError, match="no_such_column"):
        select_ids(library_run.workspace, table, "no_such_column = 1")


def test_interpolation_strip_ends_at_both_rows(library_run, space):
    a, b = space.codes["id"][:2]
    result = write_interpolation(space, a, b, 6, True, library_run.workspace, None)
    z = np.stack(pq.read_table(result.points_path).column("z").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(z[[0, -1]], space.z_mean([a, b]), atol=1e-6)
    assert result.run_id is None and (library_run.workspace.root / "analysis").is_dir()
    with pytest.raises(LatentError, match="no row with id 'nope'"):
        write_interpolation(space, a, "nope", 6, False, library_run.workspace, None)


def test_traversals_order_dimensions_by_kl(library_run, space):
    result = write_traversals(space, None, 2, 3, 5, library_run.workspace, None)
    mu, logvar = space.codes["z_mean"].astype(np.float64), space.codes["z_logvar"].astype(np.float64)
    expected_kl = (0.5 * (mu**2 + np.exp(logvar) - logvar - 1.0)).mean(axis=0)  # KL(N(mu, var) || N(0, 1))
    np.testing.assert_allclose(result.facts["kl_per_dim"], expected_kl, rtol=1e-6)
    assert result.facts["dims_by_kl"] == [int(d) for d in np.argsort(-expected_kl, kind="stable")[:3]]
    points = pq.read_table(result.points_path).to_pydict()
    for group, z in zip(points["group"], points["z"], strict=True):  # each strip moves along its own dimension only
        anchor, dim = group.rsplit("/z", 1)
        others = np.delete(np.asarray(z) - space.z_mean([anchor])[0], int(dim))
        np.testing.assert_allclose(others, 0.0, atol=1e-5)
    assert len(result.facts["anchors"]) == 2
    pngs = sorted(p.name for p in (library_run.workspace.root / "analysis").glob("traversals-*/*.png"))
    assert pngs[:2] == ["traversal-0.png", "traversal-1.png"]
    assert pq.read_table(result.points_path).num_rows == 2 * 3 * 5


def test_probe_table_compares_latents_with_raw_inputs(library_run):
    scores = probe_table(library_run.encode.table_path, [10, None])
    for space in ("latent", "raw"):
        for method in ("logistic", "knn"):
            assert 0.1 <= scores[f"probe_{space}_{method}_10"] <= scores[f"probe_{space}_{method}_all"] <= 1.0
    assert scores["probe_raw_logistic_all"] > 0.85  # digits are nearly linearly separable in pixel space


def test_compare_a_table_with_itself(library_run):
    result = compare_tables(library_run.encode.table_path, library_run.encode.table_path)
    assert result["linear_cka"] == pytest.approx(1.0)
    assert result["shared_rows"] == result["rows_a"]


def test_cli_interpolate_and_compare(library_run, tmp_path, monkeypatch, latent_app):
    ws = f"workspace={library_run.workspace.root}"
    ids = sorted(load_latent_arrays(library_run.encode.table_path)["id"])
    monkeypatch.chdir(tmp_path)
    result = latent_app(
        "interpolate", "--from", ids[0], "--to", ids[5], "--steps", "5", "--slerp", "--out", "strip.png", "--set", ws
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    assert (tmp_path / "strip.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "MLflow run" in result.stdout
    result = latent_app("compare", library_run.encode.table_path, "latents", "--set", ws)
    assert result.exit_code == 0 and "linear CKA 1.0000" in result.stdout, result.stdout + result.stderr
    error = app_error_line(latent_app("interpolate", "--from", "nope", "--to", ids[0], "--set", ws))
    assert "no row with id 'nope'" in error
    error = app_error_line(latent_app("arithmetic", "--plus", "labl = 1", "--minus", "label = 1", "--set", ws))
    assert "labl" in error
    error = app_error_line(latent_app("disentangle", "--set", ws))
    assert "no ground-truth factor columns" in error
    assert not list((library_run.workspace.root / "analysis").glob("disentanglement-*"))


def test_pca_of_one_row_is_the_origin_with_undefined_ratios_and_no_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn divides by n - 1 = 0 and warns
        one = pca(np.ones((1, 4)))
    assert one.coords.shape == (1, 1) and not one.coords.any() and np.isnan(one.explained_variance_ratio).all()
    two = pca(np.array([[0.0, 1.0], [2.0, 1.0]]))
    assert two.explained_variance_ratio[0] == pytest.approx(1.0)
