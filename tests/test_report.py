import json
import re
from pathlib import Path

import mlflow
import numpy as np
import pyarrow.parquet as pq
import pytest

from latent.report import build_report, map_column, map_rows
from latent.tables import load_latent_arrays

pytestmark = pytest.mark.integration


def test_report_is_self_contained_html_with_every_figure(library_run):
    html = Path(library_run.report.html_path).read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    captions = " ".join(c for c, _ in images)
    for needle in ("PCA", "t-SNE", "Reconstructions", "prior", "Interpolation", "traversals", "arithmetic", "KL"):
        assert needle in captions, needle
    assert all(len(data) > 1000 for _, data in images)
    assert 'src="http' not in html  # nothing fetched from elsewhere


def test_coordinates_join_the_latent_table_on_id(library_run):
    coords = pq.read_table(library_run.report.coordinates_path)
    assert coords.num_rows == 1797
    assert {"id", "split", "label", "pca_1", "pca_2", "tsne_1", "tsne_2", "tsne_fitted"} <= set(coords.column_names)
    assert all(coords.column("tsne_fitted").to_pylist())  # 1,797 rows: below report.tsne_max_rows, all fitted
    codes = load_latent_arrays(library_run.encode.table_path)
    assert set(coords.column("id").to_pylist()) == set(codes["id"])


def test_report_metrics_and_artifacts_are_in_mlflow(library_run):
    client = mlflow.MlflowClient(library_run.tracking.uri)
    run = client.get_run(library_run.report.run_id)
    ratios = [v for k, v in run.data.metrics.items() if k.startswith("pca_explained_variance_ratio_")]
    assert len(ratios) == 8 and abs(sum(ratios) - 1.0) < 1e-3
    names = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/report.html", "report/coordinates.parquet", "report/tsne.png"} <= names


def _map_data(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="latent-map-data">(.*?)</script>', html, re.S)
    assert found, "no latent map data in the report"
    return json.loads(found.group(1))


def test_report_embeds_the_latent_map_and_plotly_once_and_references_nothing_outside(library_run):
    html = Path(library_run.report.html_path).read_text()
    assert html.count('<script id="plotly-js">') == 1 and "plotly.js v" in html
    assert 'id="latent-map-plot"' in html and 'id="latent-map-color"' in html
    assert not re.search(r"""<(script|img|link|iframe|source)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", html)
    data = _map_data(html)
    assert len(data["ids"]) == data["total"] == 1797
    assert [c["name"] for c in data["columns"]] == ["label", "split", "recon_error"]
    assert [p["name"] for p in data["projections"]] == ["t-SNE", "PCA"]
    assert len(data["thumbnails"]) == 1797
    assert len(html) < 8_000_000


def _report_with(library_run, **update):
    """A new report of the session's latent table, with these report settings changed."""
    cfg = library_run.cfg.report.model_copy(update=update)
    table, dataset, model = (
        library_run.encode.table_path,
        library_run.preprocess.dataset_path,
        library_run.train.model_uri,
    )
    return build_report(table, dataset, model, cfg, library_run.workspace, library_run.tracking)


def test_map_shows_a_seeded_sample_when_the_table_is_larger_than_map_points(library_run):
    """Also a table larger than tsne_max_rows: t-SNE is fitted on 600 rows (the 300 shown among them), the other
    1,197 are placed beside their nearest fitted neighbours; every row keeps coordinates."""
    update = {"map_points": 300, "tsne_perplexity": 10.0, "tsne_max_rows": 600, "tsne_iterations": 300, "probes": False}
    result = _report_with(library_run, **update)
    data = _map_data(Path(result.html_path).read_text())
    all_ids = pq.read_table(result.coordinates_path).column("id").to_pylist()
    assert len(all_ids) == 1797 and data["total"] == 1797  # the coordinates table keeps every row
    assert len(data["ids"]) == len(set(data["ids"])) == len(data["thumbnails"]) == 300
    assert set(data["ids"]) <= set(all_ids) and data["ids"] == sorted(data["ids"])
    assert all(len(p["x"]) == 300 for p in data["projections"])
    coords = pq.read_table(result.coordinates_path).to_pydict()
    fitted = {i for i, f in zip(coords["id"], coords["tsne_fitted"], strict=True) if f}
    assert len(fitted) == 600 and set(data["ids"]) <= fitted
    assert np.isfinite(np.array([coords["tsne_1"], coords["tsne_2"]], dtype=float)).all()
    run = mlflow.MlflowClient(library_run.tracking.uri).get_run(result.run_id)
    assert run.data.metrics["tsne_fitted_rows"] == 600
    np.testing.assert_array_equal(map_rows(1797, 300, 0), map_rows(1797, 300, 0))
    assert not np.array_equal(map_rows(1797, 300, 0), map_rows(1797, 300, 1))
    np.testing.assert_array_equal(map_rows(50, 300, 0), np.arange(50))


def test_map_columns_are_categorical_for_few_levels_and_continuous_otherwise():
    shape = map_column("shape_idx", np.array([2, 0, 1, 0]))
    assert shape["kind"] == "categorical" and shape["levels"] == ["0", "1", "2"] and shape["codes"] == [2, 0, 1, 0]
    label = map_column("label", np.array([1.0, np.nan, 0.0]))  # unlabeled rows read as NaN
    assert label["levels"] == ["0", "1", "missing"] and label["codes"] == [1, 2, 0]
    split = map_column("split", np.array(["val", "train"], dtype=object))
    assert split["levels"] == ["train", "val"]
    position = map_column("pos_x_idx", np.arange(32))  # 32 positions: a scale, not 32 colours
    assert position["kind"] == "continuous" and len(position["values"]) == 32
    error = map_column("recon_error", np.array([0.123456, np.inf]))
    assert error == {"name": "recon_error", "kind": "continuous", "values": [0.1235, None]}


def test_optional_umap_projection_joins_the_map_and_the_coordinates(library_run, tmp_path):
    pytest.importorskip("umap", reason="umap-learn is the optional extra latent[umap]")
    update = {"umap": True, "probes": False, "tsne_perplexity": 10.0, "tsne_max_rows": 1000}  # + UMAP's transform
    result = _report_with(library_run, **update)
    coords = pq.read_table(result.coordinates_path)
    assert {"umap_1", "umap_2"} <= set(coords.column_names)
    assert (
        np.isfinite(coords.column("umap_1").to_numpy()).all() and np.isfinite(coords.column("umap_2").to_numpy()).all()
    )
    html = Path(result.html_path).read_text()
    assert '<section id="umap"' in html and '"UMAP"' in html
