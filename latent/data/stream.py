"""Streaming one split of a dataset table into training: row groups, disjoint per rank and per loader worker.

The unit of reading is a Parquet row group. Each epoch the units are put in an order drawn from (seed, epoch)
alone, so an epoch's order needs no saved state and a resumed training reads exactly what an uninterrupted one
would. The epoch's units, laid end to end, form one stream of the split's rows; rank r of W takes the r-th of W
equal contiguous parts of it (rows differ by at most one between ranks), and within a rank each DataLoader worker
takes the rows of the batches it will deliver. Every row of the split is delivered exactly once per epoch, and
every rank delivers the same number of batches (DDP needs that). Only the row groups at the edge of a part are
read by two readers (each keeping its own rows).

Rows are mixed by a shuffle buffer of `buffer_rows` per worker: rows are pooled, and whenever the pool holds
`buffer_rows` it is permuted and all but half of it is emitted. A row thus lands within about `buffer_rows` rows
of where the (randomly ordered) row groups put it: the result is a uniform random order of row groups with a full
shuffle inside every window of `buffer_rows`; when a worker's part is no larger than the buffer it is a full
shuffle of that part. Pixels stay in their stored dtype (uint8) until `model_input` converts them on the device.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from latent.data.arrow import arrow_to_vectors, stored_dtype
from latent.data.dataset import FeatureTransform, shard_files
from latent.errors import DataError

DEFAULT_BUFFER_ROWS = 16384
# batches a loader worker hands over at once: one inter-process transfer (and one host-to-device copy) per block
# instead of per batch, which on small batches costs more than reading the rows
BATCHES_PER_BLOCK = 16
# blocks a reading thread holds ready ahead of the training step (train.loader_workers: 0, the CPU's default)
READ_AHEAD = 2
# a rank's validation rows up to this size are read once and kept in their stored dtype (validation reads the same
# rows every epoch, and its row groups are shared with train: streaming them re-reads the whole table for a tenth)
VAL_CACHE_BYTES = 64 * 2**20
MEMORY_SHARE = 0.25  # train.data=auto holds the table in memory when its float32 copy fits in this share of RAM

T = TypeVar("T")


@dataclass(frozen=True)
class Unit:
    """One row group of one shard, and how many of its rows belong to the split."""

    file: str
    row_group: int
    rows: int


def split_units(path: str | Path, split: str) -> list[Unit]:
    """The row groups holding rows of `split`, in table order (reads only the `split` column)."""
    units = []
    for file in shard_files(path):
        try:
            with pq.ParquetFile(file) as shard:
                for i in range(shard.num_row_groups):
                    column = shard.read_row_group(i, columns=["split"]).column("split")
                    rows = int(pc.sum(pc.equal(column, split)).as_py() or 0)
                    if rows:
                        units.append(Unit(str(file), i, rows))
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{file}: cannot be read ({exc}); rebuild it with `latent preprocess --force`") from None
    return units


def epoch_order(units: list[Unit], seed: int, epoch: int, shuffle: bool) -> list[Unit]:
    if not shuffle:
        return list(units)
    order = np.random.default_rng([seed, epoch]).permutation(len(units))
    return [units[i] for i in order]


def rank_rows(total: int, rank: int, world: int) -> tuple[int, int]:
    """Rank's contiguous part [start, stop) of an epoch's stream of `total` rows."""
    return total * rank // world, total * (rank + 1) // world


def steps_per_epoch(total: int, world: int, batch_size: int) -> int:
    return max(1, math.ceil(math.ceil(total / world) / batch_size))


def batch_sizes(rows: int, steps: int, batch_size: int) -> list[int]:
    """`rows` cut into exactly `steps` batches of `batch_size` (the last one partial, never empty).

    Ranks hold rows that differ by at most one, so the same step count fits every rank; where a rank's rows fill
    one batch fewer, its last full batch gives one row to a final batch of one.
    """
    if rows < steps:
        raise ValueError(f"{rows} rows cannot fill {steps} batches")
    sizes = [batch_size] * (steps - 1) + [rows - batch_size * (steps - 1)]
    if sizes[-1] <= 0:
        sizes[-2] += sizes[-1] - 1
        sizes[-1] = 1
    return sizes


def unit_dtype(unit: Unit) -> np.dtype:
    """The stored element type of a unit's rows (uint8 pixels, uint16 counts, float32 features)."""
    try:
        return np.dtype(stored_dtype(pq.read_schema(unit.file).field("x")))
    except (pa.ArrowException, OSError, TypeError) as exc:
        raise DataError(f"{unit.file}: cannot be read ({exc}); rebuild it with `latent preprocess --force`") from None


def read_unit(unit: Unit, split: str) -> np.ndarray:
    """The split's rows of one row group as (n, d) in the stored dtype (uint8 pixels stay uint8)."""
    try:
        with pq.ParquetFile(unit.file, memory_map=True) as shard:  # mapped: a quarter faster than buffered reads
            table = shard.read_row_group(unit.row_group, columns=["split", "x"])
            dtype = stored_dtype(shard.schema_arrow.field("x"))
    except (pa.ArrowException, OSError, TypeError) as exc:
        raise DataError(f"{unit.file}: cannot be read ({exc}); rebuild it with `latent preprocess --force`") from None
    # a read-only view of the decoded rows: the split's rows are copied out once here, and the shuffle and the
    # batching copy only what they hand on
    rows = arrow_to_vectors(table.column("x"), dtype, dtype, writable=False)
    if unit.rows == table.num_rows:  # every row of the group is in the split
        return rows
    mine = pc.equal(table.column("split"), split).to_numpy(zero_copy_only=False)
    return rows[mine]


def read_range(units: list[Unit], split: str, start: int, stop: int) -> Iterator[np.ndarray]:
    """Rows [start, stop) of the stream formed by `units` laid end to end, one row group at a time."""
    offset = 0
    for unit in units:
        lo, hi = max(start - offset, 0), min(stop - offset, unit.rows)
        offset += unit.rows
        if lo < hi:
            yield read_unit(unit, split)[lo:hi]
        if offset >= stop:
            return


class SplitStream(IterableDataset):
    """One rank's batches of a split for one epoch (`set_epoch` before iterating), as uint8 or float32 tensors.

    Yields blocks of consecutive batches as (rows, batch sizes) — use DataLoader(batch_size=None) and split each
    block with `torch.split(rows, sizes)`; `iter_batches` does both. With DataLoader workers, worker w of K produces
    blocks w, w + K, ..., which is the order the DataLoader delivers them in, so the rank's batch sequence does not
    depend on timing. shuffle=False (validation) reads the rank's rows in table order.
    """

    def __init__(
        self,
        units: list[Unit],
        split: str,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world: int = 1,
        buffer_rows: int = DEFAULT_BUFFER_ROWS,
        batches_per_block: int = BATCHES_PER_BLOCK,
    ) -> None:
        self.units, self.split, self.batch_size, self.seed = units, split, batch_size, seed
        self.batches_per_block = batches_per_block
        self.shuffle, self.rank, self.world, self.buffer_rows = shuffle, rank, world, buffer_rows
        self.total = sum(u.rows for u in units)
        self.steps = steps_per_epoch(self.total, world, batch_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def _plan(self, worker: int, workers: int) -> tuple[int, int, list[list[int]]]:
        """This worker's contiguous rows [start, stop) of the rank's share and its blocks' batch sizes."""
        start, stop = rank_rows(self.total, self.rank, self.world)
        sizes = batch_sizes(stop - start, self.steps, self.batch_size)
        g = self.batches_per_block
        blocks = [sizes[i : i + g] for i in range(0, len(sizes), g)]
        for w in range(worker):
            start += sum(sum(b) for b in blocks[w::workers])
        mine = blocks[worker::workers]
        return start, start + sum(sum(b) for b in mine), mine

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        start, stop, blocks = self._plan(worker, workers)
        units = epoch_order(self.units, self.seed, self.epoch, self.shuffle)
        chunks = read_range(units, self.split, start, stop)
        totals = [sum(b) for b in blocks]
        if not self.shuffle:
            rows = _batched(chunks, totals)
        else:
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
            rows = _shuffled(chunks, totals, rng, self.buffer_rows)
        yield from zip(rows, blocks, strict=True)


def iter_batches(blocks: Iterable[tuple[torch.Tensor, list[int]]]) -> Iterator[torch.Tensor]:
    """The batches of a SplitStream's (rows, sizes) blocks, as views of each block."""
    for block, sizes in blocks:
        yield from torch.split(block, list(sizes))


def _batched(chunks: Iterator[np.ndarray], sizes: list[int]) -> Iterator[torch.Tensor]:
    pending: list[np.ndarray] = []
    held = 0
    sizes = list(sizes)
    for chunk in chunks:
        pending.append(chunk)
        held += len(chunk)
        while sizes and held >= sizes[0]:
            pool = np.concatenate(pending) if len(pending) > 1 else pending[0]
            n = sizes.pop(0)
            yield torch.from_numpy(pool[:n].copy())  # a copy: a view would ship the whole pool to the loader
            pending, held = [pool[n:]], len(pool) - n


def _shuffled(
    chunks: Iterator[np.ndarray], sizes: list[int], rng: np.random.Generator, buffer_rows: int
) -> Iterator[torch.Tensor]:
    # The pool is permuted by index and its rows live in a buffer reused slot by slot (`_Pool`): a row is copied
    # once into the pool and once into the block that emits it; permuting the pool and keeping half of it move
    # only slot numbers.
    sizes = list(sizes)
    pool: _Pool | None = None
    for chunk in chunks:
        if pool is None:
            pool = _Pool(chunk)
        pool.add(chunk)
        if len(pool) >= buffer_rows:
            order, used, keep = rng.permutation(len(pool)), 0, buffer_rows // 2
            while sizes and len(pool) - used - sizes[0] >= keep:
                n = sizes.pop(0)
                yield torch.from_numpy(pool.take(order[used : used + n]))
                used += n
            pool.keep(order[used:], order[:used])
    if pool is not None and sizes:
        order, used = rng.permutation(len(pool)), 0
        for n in sizes:
            yield torch.from_numpy(pool.take(order[used : used + n]))
            used += n


class _Pool:
    """The shuffle buffer's rows in their pool order: row i of the pool is `store[slots[i]]`. Freed slots take the
    next chunk's rows, so the buffer stops growing once it holds the most rows the pool ever has."""

    def __init__(self, like: np.ndarray) -> None:
        self.store = np.empty((0, *like.shape[1:]), like.dtype)
        self.slots = np.empty(0, np.intp)
        self.free = np.empty(0, np.intp)

    def __len__(self) -> int:
        return len(self.slots)

    def add(self, rows: np.ndarray) -> None:
        if len(self.free) < len(rows):
            old = len(self.store)
            size = max(len(self.slots) + len(rows), old + old // 2)
            store = np.empty((size, *self.store.shape[1:]), self.store.dtype)
            store[:old] = self.store
            self.store, self.free = store, np.concatenate([self.free, np.arange(old, size)])
        new, self.free = self.free[: len(rows)], self.free[len(rows) :]
        self.store[new] = rows
        self.slots = np.concatenate([self.slots, new])

    def take(self, positions: np.ndarray) -> np.ndarray:
        return self.store[self.slots[positions]]

    def keep(self, kept: np.ndarray, dropped: np.ndarray) -> None:
        """The pool becomes its rows at `kept`, in that order; the slots of `dropped` are reused."""
        self.free = np.sort(np.concatenate([self.free, self.slots[dropped]]))
        self.slots = self.slots[kept]


def put_unless_stopped(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put `item` on a bounded queue, waiting for room until `stop` is set; False when stopped first (the consumer
    is gone and the producing thread should end)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def read_ahead(blocks: Iterable[T], depth: int = READ_AHEAD) -> Iterator[T]:
    """The items of `blocks`, produced in a background thread up to `depth` ahead of the consumer, in the same
    order. Reading overlaps the training step: Parquet decoding and NumPy's copies release the GIL.

    An exception raised while producing is raised here, in the consumer, with its traceback; when the consumer stops
    early (an exception of its own, Ctrl+C, a `break`), closing this generator stops the thread and waits for it.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        return put_unless_stopped(items, entry, stop)

    def produce() -> None:
        try:
            for item in blocks:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the consumer, which raises it
            put(("error", exc))

    thread = threading.Thread(target=produce, name="latent-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, value = items.get(timeout=1.0)
            except queue.Empty:
                if not thread.is_alive() and items.empty():
                    raise RuntimeError("the read-ahead thread ended without a result") from None
                continue
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:  # unblock a producer waiting on a full queue
                items.get_nowait()
        thread.join()


def model_input(x: torch.Tensor, transform: FeatureTransform, device: torch.device) -> torch.Tensor:
    """A stored batch (uint8 pixels, uint16 counts or float32 features) as the model's float32 input, converted on the device:
    the same arithmetic as `FeatureTransform.apply`."""
    x = x.to(device, non_blocking=True).float()
    if transform.scale != 1.0:
        x = x * transform.scale
    if transform.fill is not None:
        x = torch.where(torch.isnan(x), torch.tensor(transform.fill, device=device), x)
    if transform.mean is not None and transform.std is not None:
        x = (x - torch.tensor(transform.mean, device=device)) / torch.tensor(transform.std, device=device)
    return x


def loader_workers(requested: int | str, device: torch.device, local_processes: int = 1) -> int | str:
    """train.loader_workers resolved to N processes, 0 (one reading thread in the training process) or "inline"
    (read between steps, in the step's thread).

    `auto` on an accelerator: 2 processes per rank. On the CPU: the reading thread when the machine has a core the
    step's threads leave free, else inline. A reader beside threads that already hold every core only preempts them,
    and each preempted thread stalls the step's others at their next barrier: measured on 2 cores with torch's 2
    threads, a 60,000 x 784 epoch took 4.8 s with the thread, 4.1 s inline and 4.1 s in memory; with 1 torch thread
    the thread overlaps the step (3.3 s, in memory 3.3 s; inline 3.7 s)."""
    if requested != "auto":
        return requested if requested == "inline" else int(requested)
    if device.type != "cpu":
        return 2
    return 0 if spare_cores(local_processes) > 0 else "inline"


def spare_cores(local_processes: int = 1) -> int:
    """Cores of this process's CPU set that the training step's threads (of every local rank) leave free."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return cores - torch.get_num_threads() * local_processes


def available_memory() -> int:
    """Bytes the kernel says can be allocated without swapping (MemAvailable), or free pages where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def choose_data_mode(requested: str, rows: int, feature_dim: int, processes: int) -> str:
    """memory | stream. auto: memory when the float32 copies of train + val that every local process would hold
    fit in MEMORY_SHARE of the available memory, else stream."""
    if requested != "auto":
        return requested
    need = rows * feature_dim * 4 * processes
    return "memory" if need <= MEMORY_SHARE * available_memory() else "stream"
