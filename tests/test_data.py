import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from latent.config import DaskConfig, PreprocessConfig, SplitConfig
from latent.data import ingest, load_dataset_arrays, preprocess, read_dataset_info
from latent.data.dataset import read_manifest, split_of, write_dataset_table
from latent.errors import DataError
from latent.workspace import Workspace

pytestmark = pytest.mark.integration


def test_ingest_writes_all_digits_with_stable_ids(library_run):
    result = library_run.ingest
    table = pq.read_table(Path(result.raw_path).parent / "raw.parquet")
    assert table.num_rows == 1797
    ids = table.column("id").to_pylist()
    assert len(set(ids)) == 1797 and ids[0] == "digits-00000"
    assert sorted(set(table.column("label").to_pylist())) == list(range(10))
    meta = table.schema.metadata
    assert meta[b"latent.height"] == b"8" and meta[b"latent.width"] == b"8"


def test_ingest_reuses_an_existing_raw_table(library_run):
    again = ingest(library_run.cfg.dataset, library_run.workspace)
    assert again.reused and again.raw_path == library_run.ingest.raw_path


def test_ingest_with_another_shard_size_keeps_the_plans_already_there(tmp_path, library_run):
    ws = Workspace.at(tmp_path / "ws")
    first = ingest(library_run.cfg.dataset, ws, shard_rows=512)
    raw = Path(first.raw_path).parent / "raw.parquet"
    before = (raw.stat().st_ino, raw.read_bytes())
    second = ingest(library_run.cfg.dataset, ws, shard_rows=100)
    assert not second.reused and second.fingerprint == first.fingerprint
    assert Path(first.raw_path).is_file() and Path(second.raw_path).is_file()  # the 512-row plan is still there
    assert (raw.stat().st_ino, raw.read_bytes()) == before  # the raw table a reader may hold is untouched
    assert sorted(p.name for p in raw.parent.parent.iterdir()) == [raw.parent.name]  # no scratch left
    small = preprocess(second.raw_path, second.fingerprint, PreprocessConfig(shard_rows=100), library_run.cfg.dask, ws)
    assert read_dataset_info(small.dataset_path).rows == 1797
    assert ingest(library_run.cfg.dataset, ws, shard_rows=512).reused


def test_split_is_a_deterministic_function_of_the_id():
    split = SplitConfig(val=0.1, test=0.1)
    ids = [f"row-{i}" for i in range(20000)]
    first = [split_of(i, split) for i in ids]
    assert first == [split_of(i, split) for i in ids]
    share = {s: first.count(s) / len(ids) for s in ("train", "val", "test")}
    assert share["train"] == pytest.approx(0.8, abs=0.02)
    assert share["val"] == pytest.approx(0.1, abs=0.01)
    assert share["test"] == pytest.approx(0.1, abs=0.01)


def test_preprocess_writes_shards_manifest_and_scaled_pixels(library_run):
    pre = library_run.preprocess
    info = read_dataset_info(pre.dataset_path)
    manifest = json.loads((info.path / "manifest.json").read_text())
    assert info.rows == 1797 == sum(info.splits.values())
    assert len(manifest["shards"]) == 4  # 1,797 rows at shard_rows=512
    # one 64-byte string of 8-bit pixels per row (fast to read back), the element type in the field's metadata
    assert manifest["feature_dim"] == 64 and "x: fixed_size_binary[64]" in manifest["schema"]
    shard = pq.read_schema(info.path / manifest["shards"][0]["file"])
    assert shard.field("x").metadata == {b"latent.dtype": b"uint8"}
    assert manifest["transform"]["scale"] == 1 / 16 and manifest["transform"]["stored"] == "uint8"  # read as [0, 1]
    _, x, _ = load_dataset_arrays(info.path)
    assert x.dtype == np.float32 and x.shape == (1797, 64)
    assert x.min() == 0.0 and x.max() == 1.0
    split = library_run.cfg.preprocess.split
    table = pq.read_table(info.path / manifest["shards"][0]["file"])
    for row_id, s in zip(table.column("id").to_pylist(), table.column("split").to_pylist(), strict=True):
        assert s == split_of(row_id, split)
    stats = json.loads((info.path / "stats.json").read_text())
    assert 0 < stats["mean"] < 1 and stats["split"] == "train"


# the manifest's keys in the order every workspace so far has them on disk
PREPROCESS_MANIFEST_KEYS = [
    "schema_version",
    "dataset_version",
    "source",
    "source_fingerprint",
    "plan",
    "rows",
    "splits",
    "content_hash",
    "shape",
    "feature_dim",
    "schema",
    "shards",
    "skipped",
    "preprocess",
    "created_at",
    "transform",
    "seconds",
]
ARRAYS_MANIFEST_KEYS = [
    "schema_version",
    "dataset_version",
    "source_fingerprint",
    "rows",
    "splits",
    "content_hash",
    "shape",
    "feature_dim",
    "schema",
    "shards",
    "transform",  # how its float32 rows are stored (latent/data/arrow.py)
]


def test_a_manifest_reads_back_and_writes_out_byte_for_byte(library_run, tmp_path):
    ws = Workspace.at(tmp_path / "ws")
    arrays = write_dataset_table(ws, "roundtrip", np.arange(40, dtype=np.float32).reshape(20, 2), shard_rows=8)
    for path, keys in (
        (Path(library_run.preprocess.dataset_path), PREPROCESS_MANIFEST_KEYS),
        (arrays.path, ARRAYS_MANIFEST_KEYS),
    ):
        text = (path / "manifest.json").read_text()
        assert list(json.loads(text)) == keys
        out = tmp_path / path.name
        out.mkdir()
        read_manifest(path).write(out)
        assert (out / "manifest.json").read_text() == text


def test_preprocess_is_reused_when_inputs_are_unchanged(library_run):
    pre = library_run.preprocess
    again = preprocess(
        library_run.ingest.raw_path,
        library_run.ingest.fingerprint,
        library_run.cfg.preprocess,
        library_run.cfg.dask,
        library_run.workspace,
    )
    assert again.reused and again.dataset_version == pre.dataset_version


def test_preprocess_on_an_existing_scheduler_gives_the_same_content(library_run, tmp_path):
    """dask.address selects an already running cluster; the table content does not depend on the cluster."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = preprocess(
            library_run.ingest.raw_path,
            library_run.ingest.fingerprint,
            library_run.cfg.preprocess,
            DaskConfig(address=cluster.scheduler_address),
            Workspace.at(tmp_path / "other"),
        )
    assert not result.reused
    assert result.content_hash == library_run.preprocess.content_hash
    assert result.dataset_version == library_run.preprocess.dataset_version


def test_dataset_version_changes_with_the_preprocessing_config(library_run):
    from latent.data import dataset_version

    fp = library_run.ingest.fingerprint
    assert dataset_version(fp, PreprocessConfig()) != dataset_version(fp, PreprocessConfig(shard_rows=100))


def test_preprocess_without_raw_table_says_what_to_run(tmp_path):
    with pytest.raises(DataError, match="run `latent ingest` first"):
        preprocess(tmp_path / "missing.parquet", "fp", PreprocessConfig(), DaskConfig(), Workspace.at(tmp_path))


def test_unreachable_scheduler_is_one_clear_error(library_run, tmp_path):
    from latent.errors import LatentError

    with pytest.raises(LatentError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        preprocess(
            library_run.ingest.raw_path,
            library_run.ingest.fingerprint,
            PreprocessConfig(shard_rows=100),
            DaskConfig(address="tcp://127.0.0.1:9"),
            Workspace.at(tmp_path),
        )
    assert not any((tmp_path / "datasets").iterdir())  # nothing half-written
