import re
from pathlib import Path

import mlflow
import pyarrow.parquet as pq

from latent.tables import load_latent_arrays


def test_report_is_self_contained_html_with_every_figure(library_run):
    html = Path(library_run.report.html_path).read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    captions = " ".join(c for c, _ in images)
    for needle in ("PCA", "t-SNE", "Reconstructions", "prior", "Interpolation"):
        assert needle in captions, needle
    assert all(len(data) > 1000 for _, data in images)
    assert 'src="http' not in html  # nothing fetched from elsewhere


def test_coordinates_join_the_latent_table_on_id(library_run):
    coords = pq.read_table(library_run.report.coordinates_path)
    assert coords.num_rows == 1797
    assert {"id", "split", "label", "pca_1", "pca_2", "tsne_1", "tsne_2"} <= set(coords.column_names)
    codes = load_latent_arrays(library_run.encode.table_path)
    assert set(coords.column("id").to_pylist()) == set(codes["id"])


def test_report_metrics_and_artifacts_are_in_mlflow(library_run):
    client = mlflow.MlflowClient(library_run.tracking.uri)
    run = client.get_run(library_run.report.run_id)
    ratios = [v for k, v in run.data.metrics.items() if k.startswith("pca_explained_variance_ratio_")]
    assert len(ratios) == 8 and abs(sum(ratios) - 1.0) < 1e-3
    names = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/report.html", "report/coordinates.parquet", "report/tsne.png"} <= names
