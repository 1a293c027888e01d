"""Streaming input: every train row exactly once per epoch across ranks and loader workers, in an order fixed by
the seed; equal batch counts on every rank; resumed streaming training equals an uninterrupted one."""

from __future__ import annotations

import shutil
import threading

import mlflow
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from latent.data.dataset import read_dataset_info, write_dataset_table
from latent.data.stream import (
    SplitStream,
    batch_sizes,
    choose_data_mode,
    iter_batches,
    loader_workers,
    read_ahead,
    spare_cores,
    split_units,
)
from latent.distributed import World
from latent.errors import DataError
from latent.progress import set_reporter
from latent.tracking import setup_tracking
from latent.train import open_data, train
from latent.workspace import Workspace
from tests.helpers import Interrupt, small_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    """1,000 rows whose single feature is the row number, in shards of 64 rows."""
    ws = Workspace.at(tmp_path_factory.mktemp("stream") / "ws")
    x = np.arange(1000, dtype=np.float32)[:, None].repeat(2, 1)
    return write_dataset_table(ws, "numbered", x, shard_rows=64, val=0.2, test=0.1)


def _epoch(units, epoch, world, workers, seed=0, batch=16):
    per_rank = []
    for rank in range(world):
        ds = SplitStream(units, "train", batch, seed, True, rank, world, buffer_rows=96, batches_per_block=3)
        ds.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
        per_rank.append([b[:, 0].int().tolist() for b in iter_batches(loader)])
    return per_rank


@pytest.mark.parametrize(("world", "workers"), [(1, 0), (2, 2), (3, 1)])
def test_every_train_row_once_per_epoch_across_ranks_and_workers(numbered, world, workers):
    info = numbered
    units = split_units(info.path, "train")
    assert len(units) > world and sum(u.rows for u in units) == info.splits["train"]
    first = _epoch(units, 1, world, workers)
    rows = sorted(r for rank in first for batch in rank for r in batch)
    assert len(rows) == info.splits["train"] == len(set(rows))
    assert len({len(rank) for rank in first}) == 1, "every rank delivers the same number of batches"
    assert _epoch(units, 1, world, workers) == first, "the order is fixed by (seed, epoch)"
    second = _epoch(units, 2, world, workers)
    assert second != first and sorted(r for rank in second for b in rank for r in b) == rows
    assert _epoch(units, 1, world, workers, seed=1) != first


def test_the_shuffle_mixes_rows_across_row_groups(numbered):
    info = numbered
    (batches,) = _epoch(split_units(info.path, "train"), 1, 1, 0)
    flat = [r for b in batches for r in b]
    assert flat != sorted(flat)
    # consecutive rows of a batch come from several 64-row shards
    assert np.mean([len({r // 64 for r in b}) for b in batches]) > 2


def test_batch_sizes_fill_exactly_the_steps_and_never_leave_an_empty_batch():
    assert batch_sizes(100, 4, 32) == [32, 32, 32, 4]
    assert batch_sizes(64, 3, 32) == [32, 31, 1]  # a rank one row short of its peers' third batch
    assert sum(batch_sizes(719, 23, 32)) == 719


def test_auto_holds_small_tables_in_memory_and_streams_large_ones():
    assert choose_data_mode("auto", 1000, 64, 1) == "memory"
    assert choose_data_mode("auto", 10**9, 4096, 1) == "stream"
    assert choose_data_mode("memory", 10**9, 4096, 1) == "memory"


def test_resumed_streaming_training_equals_an_uninterrupted_one(library_run, tmp_path):
    dataset = library_run.preprocess.dataset_path
    weights = {}
    for name in ("straight", "interrupted"):
        cfg = small_config(tmp_path / name, "train.epochs=4", "train.data=stream", "train.shuffle_buffer=256")
        ws = Workspace.at(cfg.workspace)
        tracking = setup_tracking(cfg.tracking, ws)
        if name == "interrupted":
            set_reporter(Interrupt(after_epoch=2))
            try:
                with pytest.raises(KeyboardInterrupt):
                    train(dataset, cfg.model, cfg.train, ws, tracking)
            finally:
                set_reporter(None)
        result = train(dataset, cfg.model, cfg.train, ws, tracking)
        assert result.resumed_from_epoch == (2 if name == "interrupted" else 0)
        run = mlflow.MlflowClient(tracking.uri).get_run(result.run_id)
        assert run.data.params["data_mode"] == "stream"
        weights[name] = torch.load(f"{result.checkpoint_dir}/weights.pt", weights_only=True)
    a, b = weights["straight"], weights["interrupted"]
    assert all(torch.equal(a[k], b[k]) for k in a), "bit-identical"


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "latent-read-ahead"]


def test_the_reading_thread_yields_the_plain_readers_batches(numbered, tmp_path):
    """StreamedData reads in a background thread (train.loader_workers 0): the same batches, in the same order, as
    iterating the split stream inline; stopping early stops the thread."""
    cfg = small_config(tmp_path, "train.batch_size=16", "train.shuffle_buffer=96", "train.loader_workers=0").train
    data = open_data(numbered, cfg, "stream", World(), torch.device("cpu"))
    for epoch in (1, 2):
        threaded = [b.clone() for b in data.train_batches(epoch, torch.Generator())]
        plain = SplitStream(split_units(numbered.path, "train"), "train", 16, cfg.seed, True, buffer_rows=96)
        plain.set_epoch(epoch)
        expected = list(iter_batches(plain))
        assert len(threaded) == len(expected) == data.steps
        assert all(torch.equal(a, b.float()) for a, b in zip(threaded, expected, strict=True))
    val = SplitStream(split_units(numbered.path, "val"), "val", 1024, shuffle=False)
    assert torch.equal(torch.cat(list(data.val_batches())), torch.cat(list(iter_batches(val))).float())
    inline_cfg = cfg.model_copy(update={"loader_workers": "inline"})
    inline = open_data(numbered, inline_cfg, "stream", World(), torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(inline.train_batches(2, None), threaded, strict=True))
    assert not _reader_threads()
    batches = data.train_batches(3, torch.Generator())
    next(batches)
    assert _reader_threads()
    batches.close()
    assert not _reader_threads(), "closing the consumer stops the reading thread"


def test_a_small_validation_split_is_read_once_and_split_between_ranks(numbered, tmp_path):
    cfg = small_config(tmp_path, "train.batch_size=1000").train
    whole = torch.cat(list(open_data(numbered, cfg, "stream", World(), torch.device("cpu")).val_batches()))
    parts = []
    for rank in (0, 1):
        data = open_data(numbered, cfg, "stream", World(rank=rank, size=2), torch.device("cpu"))
        first = torch.cat(list(data.val_batches()))
        assert torch.equal(first, torch.cat(list(data.val_batches())))  # the cached rows, the same every epoch
        parts.append(first)
    assert torch.equal(torch.cat(parts), whole) and len(whole) == numbered.splits["val"]
    # read once: with the table gone, the next epochs still validate on the same rows
    copy = tmp_path / "copy"
    shutil.copytree(numbered.path, copy)
    data = open_data(read_dataset_info(copy), cfg, "stream", World(), torch.device("cpu"))
    first = torch.cat(list(data.val_batches()))
    shutil.rmtree(copy)
    assert torch.equal(torch.cat(list(data.val_batches())), first) and torch.equal(first, whole)
    # more ranks than validation rows: a rank with none validates nothing instead of failing
    empty = open_data(numbered, cfg, "stream", World(rank=0, size=1000), torch.device("cpu"))
    assert list(empty.val_batches()) == []


def test_auto_reads_in_a_thread_only_when_a_core_is_left_free():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        free = spare_cores()
        assert loader_workers("auto", torch.device("cpu")) == (0 if free > 0 else "inline")
        assert loader_workers("auto", torch.device("cpu"), local_processes=free + 1) == "inline"
        torch.set_num_threads(max(1, threads))
        assert loader_workers("auto", torch.device("cpu"), local_processes=64) == "inline"
        assert loader_workers("auto", torch.device("cuda")) == 2
        assert loader_workers("inline", torch.device("cpu")) == "inline" and loader_workers(0, torch.device("cpu")) == 0
    finally:
        torch.set_num_threads(threads)


@pytest.mark.timeout(120)
def test_an_error_in_the_reading_thread_fails_the_training_not_hangs_it(tmp_path):
    def broken():
        yield 1
        raise ValueError("row group 7 is bad")

    got = []
    with pytest.raises(ValueError, match="row group 7 is bad"):
        got.extend(read_ahead(broken()))
    assert got == [1] and not _reader_threads()

    # a shard that lists its split but whose pixels cannot be decoded: found by the thread, mid-epoch
    ws = Workspace.at(tmp_path / "ws")
    info = write_dataset_table(ws, "broken", np.random.default_rng(0).random((600, 4), np.float32), shard_rows=100)
    shard = sorted(info.path.glob("*.parquet"))[3]
    table = pq.read_table(shard)
    x = pa.array(np.zeros((len(table), 4), np.int64).tolist(), pa.list_(pa.int64()))  # no fixed width, no dtype
    pq.write_table(table.set_column(table.schema.get_field_index("x"), "x", x), shard)
    cfg = small_config(ws.root, "train.epochs=1", "train.data=stream", "train.batch_size=32", "train.loader_workers=0")
    with pytest.raises(DataError, match=shard.name):
        train(info.path, cfg.model, cfg.train, ws, setup_tracking(cfg.tracking, ws), resume="never")
    assert not _reader_threads()


def test_vector_columns_read_the_same_as_bytes_and_as_lists(tmp_path):
    """Dataset tables store rows as fixed-width bytes; tables written before as fixed_size_list still read, to the
    same arrays, in every element type."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from latent.data.arrow import arrow_to_vectors, stored_dtype, vectors_field, vectors_to_arrow, vectors_to_binary

    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.float32):
        x = (rng.random((300, 7)) * 200).astype(dtype)
        for name, column, field in (
            ("bytes", vectors_to_binary(x), vectors_field("x", dtype, 7)),
            ("list", vectors_to_arrow(x), pa.field("x", pa.list_(pa.from_numpy_dtype(dtype), 7))),
        ):
            path = tmp_path / f"{name}-{np.dtype(dtype).name}.parquet"
            pq.write_table(pa.table([column], schema=pa.schema([field])), path, row_group_size=128)
            table = pq.read_table(path)
            stored = stored_dtype(table.schema.field("x"))
            assert stored == np.dtype(dtype)
            back = arrow_to_vectors(table.column("x"), np.float32, stored)  # three row groups: three chunks
            np.testing.assert_array_equal(back, x.astype(np.float32))
            assert back.flags.writeable
            sliced = arrow_to_vectors(table.column("x").combine_chunks().slice(250), dtype, stored, writable=False)
            np.testing.assert_array_equal(sliced, x[250:])
