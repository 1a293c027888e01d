import json

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from latent.data import load_dataset_arrays
from latent.encode import encode
from latent.models.io import load_logged_model
from latent.tables import load_latent_arrays, open_latent_dataset

pytestmark = pytest.mark.integration


def test_table_has_every_row_once_with_the_documented_schema(library_run):
    enc = library_run.encode
    assert enc.rows == 1797 and sum(enc.rows_per_split.values()) == 1797
    table = open_latent_dataset(enc.table_path).to_table()
    assert table.num_rows == 1797
    assert len(set(table.column("id").to_pylist())) == 1797
    schema = table.schema
    assert str(schema.field("z_mean").type) == "fixed_size_list<element: float>[8]"
    assert str(schema.field("z_logvar").type) == "fixed_size_list<element: float>[8]"
    assert str(schema.field("recon_error").type) == "float"
    assert set(table.column("split").to_pylist()) == {"train", "val", "test"}


def test_file_metadata_names_the_provenance(library_run):
    enc = library_run.encode
    part = next((library_run.workspace.root / enc.table_path).glob("split=train/*.parquet"))
    meta = {k.decode(): v.decode() for k, v in pq.read_schema(part).metadata.items()}
    assert meta["latent.schema_version"] == "1"
    assert meta["latent.mlflow_run_id"] == library_run.train.run_id
    assert meta["latent.model_uri"] == library_run.train.model_uri
    assert meta["latent.dataset_content_hash"] == library_run.preprocess.content_hash
    assert meta["latent.latent_dim"] == "8"
    description = json.loads((library_run.workspace.root / enc.table_path / "_table.json").read_text())
    assert description["rows"] == 1797 and description["model"]["uri"] == library_run.train.model_uri


def test_values_equal_the_loaded_models_encoder_output(library_run):
    codes = load_latent_arrays(library_run.encode.table_path)
    ids, x, labels = load_dataset_arrays(library_run.preprocess.dataset_path)
    order = np.argsort(ids)
    model = load_logged_model(library_run.train.model_uri, library_run.tracking.uri)
    with torch.no_grad():
        mean, logvar = model.encode(torch.from_numpy(x[order]))
        err = ((model.decode(mean) - torch.from_numpy(x[order])) ** 2).mean(-1)
    assert list(codes["id"]) == list(ids[order])
    np.testing.assert_array_equal(codes["label"], labels[order])
    np.testing.assert_allclose(codes["z_mean"], mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(codes["z_logvar"], logvar.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(codes["recon_error"], err.numpy(), rtol=1e-5, atol=1e-7)


def test_pandas_and_duckdb_read_the_same_values(library_run):
    path = library_run.encode.table_path
    frame = pd.read_parquet(path).sort_values("id")
    rows = duckdb.sql(
        f"SELECT id, split, label, z_mean FROM read_parquet('{path}/*/*.parquet', hive_partitioning = true) ORDER BY id"
    ).fetchall()
    assert len(frame) == len(rows) == 1797
    assert list(frame["id"]) == [r[0] for r in rows]
    assert list(frame["split"].astype(str)) == [r[1] for r in rows]
    np.testing.assert_array_equal(np.stack(frame["z_mean"].to_numpy()), np.asarray([r[3] for r in rows], np.float32))


def test_rerun_reuses_the_published_table(library_run):
    again = encode(
        library_run.preprocess.dataset_path,
        library_run.train.model_uri,
        library_run.train.model_version,
        library_run.cfg.encode,
        library_run.workspace,
        library_run.tracking,
        library_run.train.run_id,
    )
    assert again.reused and again.table_path == library_run.encode.table_path and again.rows == 1797


def test_replacing_keeps_one_copy_of_every_row(library_run):
    """Also: the library works without MLflow (tracking=None) from a local model directory."""
    enc = encode(
        library_run.preprocess.dataset_path,
        library_run.train.checkpoint_dir,
        library_run.train.model_version,
        library_run.cfg.encode,
        library_run.workspace,
        None,
        library_run.train.run_id,
        replace=True,
    )
    assert not enc.reused
    assert open_latent_dataset(enc.table_path).count_rows() == 1797
    siblings = [p.name for p in (library_run.workspace.root / enc.table_path).parent.iterdir()]
    assert siblings == [library_run.train.model_version]  # no staging or old copies left behind
