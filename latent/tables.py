"""Latent tables: the Parquet layout analysts read, its writer, its readers and the catalog of tables.

Layout: `latents/<dataset-version>/<model-version>/split=<split>/part-<n>.parquet` (Hive-partitioned, so `split`
comes from the directory name) plus `_table.json` with the provenance (the leading underscore makes Parquet readers
skip it). Columns: `id`, `label`, any ground-truth factor columns of the dataset, `z_mean` and `z_logvar` as
fixed_size_list<float32>[k], `recon_error`. Provenance is also in each file's key-value metadata under `latent.`.
The catalog is `catalog.parquet` at the workspace root: one row per table, rebuilt from the tables' `_table.json`
files after every publish (under a lock), so it can always be regenerated from what is on disk.

Snapshots and the published path. When a source grows, the new rows are encoded into a new table,
`latents/<new dataset version>/<model version>/`, whose files are hard links to the previous snapshot's (old rows
are not rewritten: their bytes are the same files) plus `part-<token>-*.parquet` files for the new rows, and, only
where rows were deleted, rewritten copies of the files that held them. Each snapshot is a whole table in the catalog
(with its parent, rows added and deleted), readable until it is deleted. Analysts read the series' published path,
`tables/<dataset name>-<model name>/`: a folder of hard links to the current snapshot's files, every name prefixed
with that snapshot's token, replaced by the next snapshot in one atomic exchange (`publish_dir`). A reader that
opens the folder, or lists it and then opens the files, sees one snapshot whole: a name listed before an exchange
names the same bytes after it or no file at all, never another snapshot's rows. `_series.json` in it says what it is
(config key, table, model), and is what the next run compares itself with.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from latent.errors import DataError
from latent.workspace import Workspace, atomic_write_bytes, atomic_write_text, is_temporary, publish_dir

if TYPE_CHECKING:  # imported where used: `latent tables`, `query` and `neighbors` read JSON and DuckDB only
    import numpy as np
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    from filelock import FileLock

SCHEMA_VERSION = 1
TABLE_JSON = "_table.json"
SERIES_JSON = "_series.json"  # in a published path: the series' config key, current table and model
CATALOG = "catalog.parquet"
ROW_GROUP_ROWS = 65536
BASE_COLUMNS = ("id", "label")
VECTOR_COLUMNS = ("z_mean", "z_logvar", "recon_error")


def latent_schema(
    latent_dim: int, metadata: dict[str, str] | None = None, extra: list[pa.Field] | None = None
) -> pa.Schema:
    import pyarrow as pa

    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("label", pa.int64()),
        *(extra or []),
        pa.field("z_mean", pa.list_(pa.float32(), latent_dim)),
        pa.field("z_logvar", pa.list_(pa.float32(), latent_dim)),
        pa.field("recon_error", pa.float32()),
    ]
    meta = {"latent.schema_version": str(SCHEMA_VERSION), **(metadata or {})}
    return pa.schema(fields).with_metadata({k: str(v) for k, v in meta.items()})


class LatentTableWriter:
    """Streams batches into Parquet files per split: zstd, no dictionary for float columns, large row groups.

    Batches are buffered per split up to `row_group_rows`, so memory stays bounded whatever the table's size.
    """

    def __init__(
        self,
        directory: Path,
        latent_dim: int,
        metadata: dict[str, str],
        extra: list[pa.Field] | None = None,
        part: int = 0,
        row_group_rows: int = ROW_GROUP_ROWS,
        prefix: str = "part",
    ) -> None:
        self.directory = directory
        self.schema = latent_schema(latent_dim, metadata, extra)
        self.extra_names = [f.name for f in extra or []]
        self.part = part
        self.prefix = prefix
        self.row_group_rows = row_group_rows
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._pending: dict[str, list[pa.RecordBatch]] = {}
        self.rows: dict[str, int] = {}

    def write(
        self,
        split: str,
        ids: pa.Array,
        labels: pa.Array,
        z_mean: np.ndarray,
        z_logvar: np.ndarray,
        recon_error: np.ndarray,
        extra: dict[str, pa.Array] | None = None,
    ) -> None:
        import numpy as np
        import pyarrow as pa

        from latent.data.arrow import vectors_to_arrow

        batch = pa.record_batch(
            [
                ids,
                labels.cast(pa.int64()),
                *((extra or {})[name] for name in self.extra_names),
                vectors_to_arrow(z_mean.astype(np.float32, copy=False)),
                vectors_to_arrow(z_logvar.astype(np.float32, copy=False)),
                pa.array(recon_error.astype(np.float32, copy=False)),
            ],
            schema=self.schema,
        )
        pending = self._pending.setdefault(split, [])
        pending.append(batch)
        self.rows[split] = self.rows.get(split, 0) + batch.num_rows
        if sum(b.num_rows for b in pending) >= self.row_group_rows:
            self._flush(split)

    def _flush(self, split: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pending = self._pending.pop(split, [])
        if not pending:
            return
        if split not in self._writers:
            part_dir = self.directory / f"split={split}"
            part_dir.mkdir(parents=True, exist_ok=True)
            self._writers[split] = pq.ParquetWriter(
                part_dir / f"{self.prefix}-{self.part:05d}.parquet",
                self.schema,
                compression="zstd",
                use_dictionary=self.extra_names,  # ids are unique: a dictionary would only cost time
                write_statistics=["id", "label", "recon_error", *self.extra_names],
            )
        self._writers[split].write_table(pa.Table.from_batches(pending, self.schema), self.row_group_rows)

    def close(self) -> None:
        try:
            for split in list(self._pending):
                self._flush(split)
        finally:
            for writer in self._writers.values():
                writer.close()
            self._writers.clear()


@dataclass(frozen=True)
class LatentTable:
    path: Path
    info: dict

    @property
    def latent_dim(self) -> int:
        return int(self.info["latent_dim"])


def is_latent_table(path: str | Path) -> bool:
    """Whether a complete latent table is at path (its description is written last)."""
    return (Path(path) / TABLE_JSON).is_file()


def publish_latent_table(final: Path) -> contextlib.AbstractContextManager[Path]:
    """A staging directory that becomes the table at `final` in one atomic exchange (replacing any older one)."""
    return publish_dir(final, replace=True, marker=TABLE_JSON)


def write_table_info(directory: Path, description: dict) -> None:
    """Write `_table.json` (the schema version first, then the description), last, into a staging directory."""
    atomic_write_text(directory / TABLE_JSON, json.dumps({"schema_version": SCHEMA_VERSION, **description}, indent=2))


def read_table_info(path: str | Path) -> LatentTable:
    path = Path(path)
    meta_path = path / TABLE_JSON
    if not meta_path.is_file():
        raise DataError(f"{path}: not a latent table (no {TABLE_JSON}); run `latent encode` first")
    try:
        return LatentTable(path, json.loads(meta_path.read_text()))
    except ValueError as exc:
        raise DataError(f"{meta_path}: malformed table description ({exc})") from None


def table_files(path: Path) -> list[Path]:
    """The data files of a published table, `split=*/*.parquet`."""
    return _table_files(path)


def _table_files(path: Path) -> list[Path]:
    return sorted(p for p in path.glob("split=*/*.parquet") if not is_temporary(p.parent))


def open_latent_dataset(path: str | Path) -> ds.Dataset:
    """The latent table as a lazy pyarrow dataset (with `split` from the partition directories).

    Lazy: files are opened as they are scanned. For a consistent snapshot while the table may be replaced, use
    `read_latent_table` or `load_latent_arrays`.
    """
    import pyarrow.dataset as ds

    table = read_table_info(path)
    files = [str(p) for p in _table_files(table.path)]
    return ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=str(table.path))


def _read_snapshot(path: Path, columns: list[str] | None) -> tuple[dict, pa.Table]:
    """Read one published version whole, even while it is being replaced.

    The directory is opened once and every file through it, so a replacement (an atomic exchange) cannot mix
    versions; and the marker `_table.json` is checked again after the listing, because an old version is deleted
    marker first: if the marker is still there, no data file had gone when the directory was listed. Otherwise
    the read starts again, on the new version.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    for _ in range(20):
        handles: list[io.BufferedReader] = []
        parts: list[tuple[str, str, io.BufferedReader]] = []
        try:
            dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            raise DataError(f"{path}: not a latent table (no such directory); run `latent encode` first") from None
        try:
            with os.fdopen(os.open(TABLE_JSON, os.O_RDONLY, dir_fd=dir_fd)) as fh:
                info = json.load(fh)
            for entry in sorted(os.listdir(dir_fd)):
                if not entry.startswith("split="):
                    continue
                sub_fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY, dir_fd=dir_fd)
                try:
                    for name in sorted(n for n in os.listdir(sub_fd) if n.endswith(".parquet")):
                        handle = os.fdopen(os.open(name, os.O_RDONLY, dir_fd=sub_fd), "rb")
                        handles.append(handle)
                        parts.append((entry, name, handle))
                finally:
                    os.close(sub_fd)
            os.stat(TABLE_JSON, dir_fd=dir_fd)  # still published: the listing above was complete
        except FileNotFoundError:
            for handle in handles:
                handle.close()
            if not (path / TABLE_JSON).is_file():  # not replaced meanwhile: it never was a table
                raise DataError(f"{path}: not a latent table (no {TABLE_JSON}); run `latent encode` first") from None
            continue
        except ValueError as exc:
            for handle in handles:
                handle.close()
            raise DataError(f"{path}/{TABLE_JSON}: malformed table description ({exc})") from None
        finally:
            os.close(dir_fd)
        try:
            tables = []
            for entry, name, handle in parts:
                try:
                    t = pq.read_table(handle, columns=[c for c in columns if c != "split"] if columns else None)
                except (pa.ArrowException, OSError) as exc:
                    raise DataError(
                        f"{path}/{entry}/{name}: cannot be read ({' '.join(str(exc).split())[:200]}); "
                        "the table is damaged: encode it again with `latent encode --force`"
                    ) from None
                split = entry.removeprefix("split=")
                tables.append(t.append_column("split", pa.array([split] * t.num_rows, pa.string())))
        finally:
            for handle in handles:
                handle.close()
        if not tables:
            raise DataError(f"{path}: the latent table has no data files")
        return info, pa.concat_tables(tables)
    raise DataError(f"{path}: the table kept changing while being read")


def read_latent_table(path: str | Path, columns: list[str] | None = None):
    """The latent table as a pandas DataFrame (vectors as NumPy arrays per row), one consistent version."""
    return _read_snapshot(Path(path), columns)[1].to_pandas()


def load_latent_arrays(path: str | Path, splits: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """ids, split, label, z_mean (n, k), z_logvar (n, k), recon_error as arrays, ordered by id."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from latent.data.arrow import arrow_to_vectors

    _, table = _read_snapshot(Path(path), None)
    if splits:
        table = table.filter(pc.is_in(table.column("split"), pa.array(list(splits))))
    table = table.sort_by("id")
    return {
        "id": np.asarray(table.column("id").to_pylist(), dtype=object),
        "split": np.asarray(table.column("split").to_pylist(), dtype=object),
        "label": table.column("label").to_numpy(zero_copy_only=False),
        "z_mean": arrow_to_vectors(table.column("z_mean")),
        "z_logvar": arrow_to_vectors(table.column("z_logvar")),
        "recon_error": table.column("recon_error").to_numpy(zero_copy_only=False),
    }


# ---- the catalog -------------------------------------------------------------------------------------------

CATALOG_COLUMNS = (  # name, Arrow type; one row per table, derived from its _table.json
    ("table_path", "string"),
    ("dataset_version", "string"),
    ("model_version", "string"),
    ("model_uri", "string"),
    ("model_name", "string"),
    ("mlflow_run_id", "string"),
    ("encode_run_id", "string"),
    ("dataset_content_hash", "string"),
    ("latent_dim", "int32"),
    ("rows", "int64"),
    ("created_at", "string"),
    ("package_version", "string"),
    ("parent_table", "string"),  # a snapshot made from another: that table
    ("rows_added", "int64"),  # rows encoded into this snapshot (all rows of a table encoded whole)
    ("rows_deleted", "int64"),  # rows of the parent snapshot left out
)


def catalog_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in CATALOG_COLUMNS])


def list_tables(workspace: Workspace) -> list[LatentTable]:
    """Every published latent table in the workspace, newest first."""
    found = []
    for meta in workspace.latents_root.glob(f"*/*/{TABLE_JSON}"):
        if is_temporary(meta.parent) or is_temporary(meta.parent.parent):
            continue
        with contextlib.suppress(DataError):
            found.append(read_table_info(meta.parent))
    return sorted(found, key=lambda t: (t.info.get("created_at", ""), str(t.path)), reverse=True)


def latest_table(workspace: Workspace) -> LatentTable:
    tables = list_tables(workspace)
    if not tables:
        raise DataError(f"{workspace.root}: no latent tables yet; run `latent run` or `latent encode` first")
    return tables[0]


def catalog_records(tables: list[LatentTable]) -> list[dict]:
    """The catalog's rows as plain dicts (the columns of CATALOG_COLUMNS), in the order of `tables`; no pyarrow,
    so `latent tables` answers without importing it."""
    rows = []
    for t in tables:
        i = t.info
        rows.append(
            {
                "table_path": str(t.path),
                "dataset_version": i["dataset"]["version"],
                "model_version": i["model"]["version"],
                "model_uri": i["model"]["uri"],
                "model_name": i["model"].get("name"),
                "mlflow_run_id": i.get("mlflow_run_id"),
                "encode_run_id": i.get("encode_run_id"),
                "dataset_content_hash": i["dataset"].get("content_hash"),
                "latent_dim": int(i["latent_dim"]),
                "rows": int(i["rows"]),
                "created_at": i.get("created_at"),
                "package_version": i.get("package_version"),
                "parent_table": (i.get("increment") or {}).get("parent_table"),
                "rows_added": int((i.get("increment") or {}).get("rows_added", i["rows"])),
                "rows_deleted": int((i.get("increment") or {}).get("rows_deleted", 0)),
            }
        )
    return rows


def _catalog_lock(workspace: Workspace) -> FileLock:
    """One catalog writer at a time, across processes (an OS lock: released if its holder dies)."""
    from filelock import FileLock  # here: it imports asyncio, which the read-only commands do not need

    return FileLock(str(workspace.root / ".catalog.lock"))


def refresh_catalog(workspace: Workspace) -> Path:
    """Rebuild `catalog.parquet` from the published tables (atomically, one writer at a time)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with _catalog_lock(workspace):
        sink = pa.BufferOutputStream()
        rows = pa.Table.from_pylist(catalog_records(list_tables(workspace)), schema=catalog_schema())
        pq.write_table(rows, sink, compression="zstd")
        path = workspace.root / CATALOG
        atomic_write_bytes(path, sink.getvalue().to_pybytes())
        return path


def read_catalog(workspace: Workspace) -> pa.Table:
    """The catalog, rebuilt first if a table was published without it (e.g. by an interrupted run)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = workspace.root / CATALOG
    tables = list_tables(workspace)
    try:
        stale = not path.is_file() or pq.read_metadata(path).num_rows != len(tables)
    except (pa.ArrowException, OSError):  # damaged; it is derived from the tables, so rebuild it
        stale = True
    if stale:
        refresh_catalog(workspace)
    return pq.ParquetFile(path).read()  # one file: no pyarrow.dataset (and pandas) to import


# ---- the published path of a series --------------------------------------------------------------------------


def published_dir(workspace: Workspace, name: str) -> Path:
    """`tables/<name>/`: where analysts read a series' current snapshot."""
    from latent.workspace import plain_name

    return workspace.root / "tables" / plain_name(name, "series name")


def read_series(workspace: Workspace, name: str) -> dict | None:
    """The published path's `_series.json` (key, table, dataset_version, model_uri, ...), or None."""
    try:
        return json.loads((published_dir(workspace, name) / SERIES_JSON).read_text())
    except (OSError, ValueError):
        return None


def published_tables(workspace: Workspace) -> dict[str, str]:
    """Each table that a series' published path shows -> that path (`tables/<dataset>-<model>/`)."""
    shown: dict[str, str] = {}
    for record in sorted((workspace.root / "tables").glob(f"*/{SERIES_JSON}")):
        with contextlib.suppress(OSError, ValueError, KeyError):
            shown[json.loads(record.read_text())["table"]] = str(record.parent)
    return shown


def publish_series(workspace: Workspace, name: str, table_path: str | Path, series: dict) -> Path:
    """Make `tables/<name>/` the table at table_path (hard links, names prefixed with the table's token), in one
    atomic exchange; unchanged if it already is."""
    import hashlib

    from latent.workspace import link_or_copy

    table = Path(table_path)
    final = published_dir(workspace, name)
    current = read_series(workspace, name)
    record = {**series, "table": str(table)}
    if current == record and is_latent_table(final):
        return final
    token = hashlib.sha256(str(table.resolve()).encode()).hexdigest()[:10]
    with publish_dir(final, replace=True, marker=TABLE_JSON) as staging:
        for file in _table_files(table):
            (staging / file.parent.name).mkdir(exist_ok=True)
            link_or_copy(file, staging / file.parent.name / f"{token}-{file.name}")
        atomic_write_text(staging / SERIES_JSON, json.dumps(record, indent=2))
        link_or_copy(table / TABLE_JSON, staging / TABLE_JSON)
    return final


def now_utc() -> str:
    """ISO 8601 in UTC with microseconds, so tables made within a second still order by creation."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
