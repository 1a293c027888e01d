"""Latent tables as analysts meet them: layout, provenance, atomic replacement, readers, catalog, SQL, neighbours."""

from __future__ import annotations

import threading

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from latent.config import DaskConfig, EncodeConfig
from latent.data.dataset import write_dataset_table
from latent.encode import encode
from latent.errors import LatentError
from latent.models import create_model
from latent.models.io import save_model_files
from latent.query import neighbors, run_query, write_result
from latent.tables import (
    list_tables,
    load_latent_arrays,
    open_latent_dataset,
    read_catalog,
    read_latent_table,
)
from latent.workspace import Workspace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def factor_table(tmp_path_factory):
    """A small tabular dataset with two ground-truth factor columns, encoded by an untrained model."""
    ws = Workspace.at(tmp_path_factory.mktemp("tables") / "ws")
    rng = np.random.default_rng(0)
    n = 3000
    shape = rng.integers(0, 3, n).astype(np.int64)
    scale = rng.integers(0, 6, n).astype(np.int64)
    x = (rng.normal(size=(n, 12)) + shape[:, None]).astype(np.float32)
    info = write_dataset_table(ws, "toy", x, labels=shape, extra={"shape": shape, "scale": scale}, shard_rows=1000)
    torch.manual_seed(0)
    model = create_model("vae_mlp", input_dim=12, latent_dim=4, hidden_dims=(16,), likelihood="gaussian")
    model_dir = ws.root / "toy-model"
    save_model_files(model.eval(), model_dir)
    result = encode(info.path, str(model_dir), "toy-model", EncodeConfig(batch_size=256), ws, None)
    return ws, info, model_dir, result, x, shape, scale


def test_factor_columns_pass_through_with_the_layout_and_encodings(factor_table):
    ws, _, _, result, _, shape, scale = factor_table
    codes = read_latent_table(result.table_path)
    assert len(codes) == 3000
    assert list(codes.columns) == ["id", "label", "shape", "scale", "z_mean", "z_logvar", "recon_error", "split"]
    by_id = codes.set_index("id")
    ids = [f"toy-{i:08d}" for i in range(3000)]
    np.testing.assert_array_equal(by_id.loc[ids, "shape"].to_numpy(), shape)
    np.testing.assert_array_equal(by_id.loc[ids, "scale"].to_numpy(), scale)
    part = next(ws.root.glob("latents/*/toy-model/split=train/*.parquet"))
    meta = pq.ParquetFile(part).metadata
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    for i, name in enumerate(names):
        column = meta.row_group(0).column(i)
        assert column.compression == "ZSTD"
        if name.startswith(("z_mean", "z_logvar", "recon_error")):
            assert not any("DICTIONARY" in e for e in column.encodings), (name, column.encodings)


def test_dask_engine_writes_the_same_table(factor_table, tmp_path):
    ws, info, model_dir, result, *_ = factor_table
    other = encode(
        info.path,
        str(model_dir),
        "toy-model-dask",
        EncodeConfig(batch_size=256, engine="dask"),
        ws,
        None,
        dask_cfg=DaskConfig(n_workers=2),
    )
    a, b = load_latent_arrays(result.table_path), load_latent_arrays(other.table_path)
    assert list(a["id"]) == list(b["id"])
    np.testing.assert_allclose(a["z_mean"], b["z_mean"], rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in (ws.root / other.table_path).glob("split=train/*.parquet")) == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]


def test_pandas_pyarrow_duckdb_and_polars_read_identical_values(factor_table):
    polars = pytest.importorskip("polars")
    _, _, _, result, *_ = factor_table
    path = result.table_path
    frames = {
        "pandas": pd.read_parquet(path),
        "pyarrow": open_latent_dataset(path).to_table().to_pandas(),
        "duckdb": duckdb.sql(f"SELECT * FROM read_parquet('{path}/*/*.parquet', hive_partitioning = true)").df(),
        "polars": polars.read_parquet(f"{path}/*/*.parquet", hive_partitioning=True).to_pandas(),
    }
    reference = None
    for name, frame in frames.items():
        frame = frame.sort_values("id").reset_index(drop=True)
        values = {
            "id": frame["id"].astype(str).tolist(),
            "split": frame["split"].astype(str).tolist(),
            "label": frame["label"].to_numpy(np.int64),
            "shape": frame["shape"].to_numpy(np.int64),
            "z_mean": np.stack([np.asarray(v, np.float32) for v in frame["z_mean"]]),
            "recon_error": frame["recon_error"].to_numpy(np.float32),
        }
        if reference is None:
            reference = values
            continue
        for key, value in values.items():
            if isinstance(value, list):
                assert value == reference[key], (name, key)
            else:
                np.testing.assert_array_equal(value, reference[key], err_msg=f"{name} {key}")


def test_a_reader_during_replacement_sees_one_version_whole(factor_table):
    """Two models alternately replace one table; every read matches one model's encoding entirely."""
    ws, info, model_dir, *_ = factor_table
    other_dir = ws.root / "toy-model-b"
    torch.manual_seed(1)
    save_model_files(create_model("vae_mlp", input_dim=12, latent_dim=4, hidden_dims=(16,)).eval(), other_dir)
    versions = {}
    for directory in (model_dir, other_dir):
        t = encode(info.path, str(directory), "swap", EncodeConfig(batch_size=512), ws, None, replace=True)
        versions[directory.name] = load_latent_arrays(t.table_path)["z_mean"]
    seen, errors, stop = [], [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                z = load_latent_arrays(ws.latent_dir(info.version, "swap"))["z_mean"]
            except Exception as exc:  # any failure to read is a finding too
                errors.append(exc)
                return
            seen.append(next((k for k, v in versions.items() if np.array_equal(z, v)), "MIX"))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(6):
            directory = (model_dir, other_dir)[i % 2]
            encode(info.path, str(directory), "swap", EncodeConfig(batch_size=512), ws, None, replace=True)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert seen and "MIX" not in seen, seen
    assert set(seen) == set(versions)
    assert not [p for p in (ws.root / "latents" / info.version).iterdir() if p.name.startswith(".tmp-")]


def test_catalog_lists_every_table_and_rebuilds_itself(factor_table):
    ws, *_ = factor_table
    tables = list_tables(ws)
    catalog = read_catalog(ws)
    assert catalog.num_rows == len(tables) >= 2
    assert set(catalog.column("table_path").to_pylist()) == {str(t.path) for t in tables}
    (ws.root / "catalog.parquet").unlink()
    assert read_catalog(ws).num_rows == len(tables)


def test_neighbors_agree_with_brute_force(factor_table):
    ws, _, _, result, *_ = factor_table
    codes = load_latent_arrays(result.table_path)
    z, ids = codes["z_mean"].astype(np.float64), codes["id"]
    q = int(np.where(ids == "toy-00000042")[0][0])
    for metric in ("cosine", "l2"):
        got = neighbors(ws, "toy-00000042", 10, metric, table=result.table_path)
        if metric == "cosine":
            d = 1 - z @ z[q] / (np.linalg.norm(z, axis=1) * np.linalg.norm(z[q]))
        else:
            d = np.linalg.norm(z - z[q], axis=1)
        d[q] = np.inf
        order = np.argsort(d, kind="stable")[:10]
        assert got.column("id").to_pylist() == list(ids[order]), metric
        np.testing.assert_allclose(got.column("distance").to_numpy(), d[order], rtol=1e-4, atol=1e-5)


def test_neighbors_of_an_unknown_id_is_a_clear_error(factor_table):
    ws, *_ = factor_table
    with pytest.raises(LatentError, match="id 'nope' is not in the table"):
        neighbors(ws, "nope")


def test_query_sees_views_with_array_vectors(factor_table):
    ws, *_ = factor_table
    result = run_query(ws, "SELECT typeof(z_mean) AS t, count(*) AS n FROM latents GROUP BY t")
    assert result.to_pylist() == [{"t": "FLOAT[4]", "n": 3000}]
    views = run_query(ws, "SELECT count(*) AS n FROM catalog").to_pylist()[0]["n"]
    assert views == len(list_tables(ws))


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO latents SELECT * FROM latents",
        "DROP VIEW latents",
        "COPY (SELECT * FROM latents) TO 'stolen.csv'",
        "ATTACH 'other.db'",
        "SET enable_external_access = true",
        "SELECT 1; DROP VIEW latents",
        "INSTALL httpfs",
    ],
)
def test_query_refuses_statements_that_write(factor_table, sql):
    ws, *_ = factor_table
    with pytest.raises(LatentError, match=r"^query: "):
        run_query(ws, sql)


def test_query_cannot_read_outside_the_workspace(factor_table, tmp_path):
    ws, *_ = factor_table
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    with pytest.raises(LatentError, match="Permission Error"):
        run_query(ws, f"SELECT * FROM read_csv('{secret}')")


def test_query_results_write_to_csv_and_parquet(factor_table, tmp_path):
    ws, *_ = factor_table
    result = run_query(ws, "SELECT id, label, z_mean FROM latents ORDER BY id LIMIT 5")
    write_result(result, tmp_path / "r.parquet")
    assert pq.read_table(tmp_path / "r.parquet").equals(result)
    write_result(result, tmp_path / "r.csv")
    frame = pd.read_csv(tmp_path / "r.csv")
    assert list(frame["id"]) == result.column("id").to_pylist() and frame["z_mean"][0].startswith("[")
    with pytest.raises(LatentError, match=r"expected a \.csv or \.parquet"):
        write_result(result, tmp_path / "r.xlsx")
