"""The dataset table's on-disk format, and its only owner: file names, schema, splits, the manifest, the read-time
feature transform, and reading the rows back as arrays for training and encoding.

A dataset table is a folder `datasets/<version>/` of Parquet shards (`part-00000.parquet`, ...: `id`, `split`,
`label`, `x` as a fixed-size list, then any extra columns such as ground-truth factors), a `manifest.json` that a
reader trusts (written last, so its presence marks a complete table), a `stats.json` of train-split statistics, and
for some sources a `quarantine.parquet` of skipped files or a `vocabulary.json`.

Snapshots. A dataset version names one snapshot of an append-mostly table. A snapshot made from the previous one
(the source grew: see `latent/data/ingest.py`) is a folder like any other, whose manifest names its `parent`; its
shards are hard links to the parent's shard files for the partitions that did not change (the same bytes on disk,
so old rows are neither decoded nor copied again), new shards for the new partitions, and rewritten shards only
where some rows were deleted. `increment.json` lists what changed: `rows_added`, `rows_deleted`, the new shard files
and the ids of the deleted rows. Since every snapshot is a complete folder of its own, an old snapshot stays readable
while newer ones are made, and deleting it (`rm -r datasets/<version>`) never touches another's rows. The read-time
feature transform and `stats.json` of the first snapshot are carried to every snapshot made from it (see
`FeatureTransform`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from latent.data.arrow import arrow_to_vectors, vectors_field
from latent.errors import DataError
from latent.workspace import atomic_write_text, publish_dir

SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
STATS = "stats.json"
QUARANTINE = "quarantine.parquet"
VOCABULARY = "vocabulary.json"
INCREMENT = "increment.json"  # a snapshot made from a previous one: what changed (see the module's docstring)
MOLECULES = "molecules.json"  # molecule tables: representation, fingerprint settings, SELFIES tokens
SHARD_GLOB = "part-*.parquet"
SPLITS = ("train", "val", "test")
DATASET_COLUMNS = ("id", "split", "label", "x")
# Dataset tables are read again and again (every epoch's loader, every encoding): LZ4 decodes ~2.5x faster than
# zstd here for float features, which rarely compress anyway. Analyst-facing latent tables use zstd.
DATASET_COMPRESSION = "lz4"


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def shard_files(path: str | Path) -> list[Path]:
    return sorted(Path(path).glob(SHARD_GLOB))


def split_of(row_id: str, split: Any) -> str:
    """Deterministic split from a hash of the id (`split`: a SplitConfig, val and test fractions): stable across
    runs, machines and row order."""
    h = int.from_bytes(hashlib.sha256(row_id.encode()).digest()[:8], "big") / 2.0**64
    if h < split.test:
        return "test"
    if h < split.test + split.val:
        return "val"
    return "train"


def dataset_schema(width: int, dtype: np.dtype | type = np.float32, extra: list[pa.Field] | None = None) -> pa.Schema:
    """id, split, label, the rows `x` (fixed-width bytes of `dtype`, see latent/data/arrow.py), extra columns."""
    return pa.schema(
        [
            ("id", pa.string()),
            ("split", pa.string()),
            ("label", pa.int64()),
            vectors_field("x", dtype, width),
            *(extra or []),
        ]
    )


def shard_metadata(version: str, geometry: tuple[int, int, int] | None = None) -> dict[str, str]:
    """Parquet key-value metadata of every shard; with the (channels, height, width) of image rows when known."""
    meta = {"latent.schema_version": str(SCHEMA_VERSION), "latent.dataset_version": version}
    if geometry is not None:
        channels, height, width = geometry
        meta.update({"latent.height": str(height), "latent.width": str(width), "latent.channels": str(channels)})
    return meta


def write_shard(table: pa.Table, path: str | Path) -> None:
    pq.write_table(table, path, compression=DATASET_COMPRESSION, use_dictionary=["split"])


@dataclass(frozen=True)
class FeatureTransform:
    """How stored features become model inputs: x * scale (uint8 pixels -> [0, 1]), then missing values filled
    with train-split medians, then standardised with train-split mean and std. Recorded in the manifest and
    applied on every read, so training and encoding see identical inputs.

    A snapshot made incrementally keeps the transform fitted on the first snapshot of its chain, also when a model
    is retrained on it: refitting would change the inputs of rows already encoded, and their latents would no
    longer be comparable with the new rows'. `--force` rebuilds the table whole and fits it afresh."""

    scale: float = 1.0
    fill: tuple[float, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    stored: str | None = None  # element type of the stored rows (uint8, uint16, float32); None: list columns

    def apply(self, column) -> np.ndarray:
        x = arrow_to_vectors(column, np.float32, self.stored)
        if self.scale != 1.0:
            x = x * np.float32(self.scale)
        if self.fill is not None:
            missing = np.isnan(x)
            if missing.any():
                x = np.where(missing, np.asarray(self.fill, np.float32)[None, :], x)
        if self.mean is not None and self.std is not None:
            x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x, dtype=np.float32)

    def to_json(self) -> dict:
        data = {"scale": self.scale, "fill": self.fill, "mean": self.mean, "std": self.std}
        return {**data, "stored": self.stored} if self.stored is not None else data

    @classmethod
    def from_json(cls, data: dict | None) -> FeatureTransform:
        data = data or {}
        as_tuple = lambda v: tuple(float(x) for x in v) if v is not None else None  # noqa: E731
        return cls(
            float(data.get("scale", 1.0)),
            as_tuple(data.get("fill")),
            as_tuple(data.get("mean")),
            as_tuple(data.get("std")),
            data.get("stored"),
        )


@dataclass(frozen=True)
class Manifest:
    """`manifest.json`: what a dataset table holds. Fields left None are not written (a table written from arrays
    has no source, plan or preprocessing config), so a manifest reads back and writes out unchanged."""

    dataset_version: str
    rows: int
    splits: dict[str, int]
    content_hash: str
    shape: dict[str, int]
    feature_dim: int
    source_fingerprint: str | None = None
    schema: str | None = None
    shards: list[dict[str, Any]] | None = None
    schema_version: int = SCHEMA_VERSION
    source: str | None = None
    plan: str | None = None
    skipped: list[dict[str, str]] | None = None  # files left out (image folders with on_bad_file: skip)
    image: dict[str, Any] | None = None  # image folders: the size and mode every image was brought to, and why
    preprocess: dict[str, Any] | None = None
    created_at: str | None = None
    transform: FeatureTransform | None = None
    seconds: float | None = None
    parent: str | None = None  # the dataset version this snapshot was made from (incremental preprocessing)

    # the order of the keys in the file, kept as it always was
    KEYS = (
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
        "image",
        "preprocess",
        "created_at",
        "transform",
        "seconds",
        "parent",
    )

    def to_json(self) -> dict[str, Any]:
        out = {}
        for key in self.KEYS:
            value = getattr(self, key)
            if value is not None:
                out[key] = value.to_json() if isinstance(value, FeatureTransform) else value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["rows"] = int(data["rows"])
        values["splits"] = dict(data["splits"])
        values["shape"] = dict(data["shape"])
        values["feature_dim"] = int(data["feature_dim"])
        values["dataset_version"], values["content_hash"] = data["dataset_version"], data["content_hash"]
        if "transform" in data:
            values["transform"] = FeatureTransform.from_json(data["transform"])
        return cls(**values)

    def write(self, directory: str | Path) -> Path:
        """Write `manifest.json` into the (staging) directory atomically; last, since it marks the table complete."""
        path = Path(directory) / MANIFEST
        atomic_write_text(path, json.dumps(self.to_json(), indent=2))
        return path


def is_dataset_table(path: str | Path) -> bool:
    """Whether a complete dataset table is at path (its manifest is written last)."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"{path}: not a dataset table (no {MANIFEST}); run `latent preprocess` first")
    try:
        return Manifest.from_json(json.loads(manifest_path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{manifest_path}: malformed manifest ({exc!r})") from None


@dataclass(frozen=True)
class DatasetInfo:
    path: Path
    version: str
    rows: int
    splits: dict[str, int]
    content_hash: str
    feature_dim: int
    shape: dict[str, int]
    transform: FeatureTransform = FeatureTransform()


def read_dataset_info(path: str | Path) -> DatasetInfo:
    path = Path(path)
    m = read_manifest(path)
    return DatasetInfo(
        path=path,
        version=m.dataset_version,
        rows=m.rows,
        splits=m.splits,
        content_hash=m.content_hash,
        feature_dim=m.feature_dim,
        shape=m.shape,
        transform=m.transform or FeatureTransform(),
    )


def write_stats(directory: str | Path, stats: dict[str, Any]) -> None:
    atomic_write_text(Path(directory) / STATS, json.dumps(stats, indent=2))


def write_increment(directory: str | Path, increment: dict[str, Any]) -> None:
    atomic_write_text(Path(directory) / INCREMENT, json.dumps(increment))


def read_increment(path: str | Path) -> dict[str, Any] | None:
    """What a snapshot made from a previous one changed (parent, rows_added, rows_deleted, new_shards,
    deleted_ids), or None for a table built whole."""
    file = Path(path) / INCREMENT
    return json.loads(file.read_text()) if file.is_file() else None


def quarantine_path(directory: str | Path) -> Path:
    """Where a dataset table lists the files it left out (present only when some were)."""
    return Path(directory) / QUARANTINE


def write_quarantine(directory: str | Path, skipped: list[tuple[str, str]]) -> None:
    table = pa.table({"file": [f for f, _ in skipped], "reason": [w for _, w in skipped]})
    pq.write_table(table, quarantine_path(directory))


def write_vocabulary(directory: str | Path, vocabulary: list[str]) -> None:
    atomic_write_text(Path(directory) / VOCABULARY, json.dumps(vocabulary))


def read_vocabulary(dataset_path: str | Path) -> list[str] | None:
    """The vocabulary a text dataset table was built with (column i of `x` counts word i), or None."""
    path = Path(dataset_path) / VOCABULARY
    return json.loads(path.read_text()) if path.is_file() else None


def write_molecule_info(directory: str | Path, info: dict) -> None:
    atomic_write_text(Path(directory) / MOLECULES, json.dumps(info))


def read_molecule_info(dataset_path: str | Path) -> dict | None:
    """How a molecule dataset table encodes its molecules (representation, fingerprint radius and bits, the SELFIES
    token vocabulary), or None for other tables."""
    path = Path(dataset_path) / MOLECULES
    return json.loads(path.read_text()) if path.is_file() else None


def load_dataset_arrays(
    path: str | Path, splits: tuple[str, ...] = SPLITS, transform: FeatureTransform | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, x as float32 (n, d), labels) for the rows of the given splits, in table order; x through the
    manifest's transform, or through `transform` (which preprocessing passes while it fits the manifest's)."""
    path = Path(path)
    if transform is None:
        transform = read_dataset_info(path).transform
    try:
        dataset = ds.dataset([str(p) for p in shard_files(path)], format="parquet")
        table = dataset.to_table(columns=["id", "label", "x"], filter=ds.field("split").isin(list(splits)))
    except (pa.ArrowException, OSError) as exc:
        raise _damaged(path, exc) from None
    ids = np.asarray(table.column("id").to_pylist(), dtype=object)
    labels = table.column("label").to_numpy(zero_copy_only=False)
    return ids, transform.apply(table.column("x")), labels


def extra_fields(path: str | Path) -> list:
    """Columns a dataset carries beyond id/split/label/x (e.g. ground-truth factors), passed on to latent tables."""
    files = shard_files(path)
    if not files:
        return []
    return [f for f in pq.read_schema(files[0]) if f.name not in DATASET_COLUMNS]


def iter_dataset_batches(path: str | Path, batch_size: int, files: list[Path] | None = None) -> Iterator:
    """Stream record batches of at most batch_size rows, one shard and one row group at a time.

    Memory is flat in the dataset's size (measured: peak RSS equal for 100k and 1M rows), which a multi-file
    dataset scanner with read-ahead is not.
    """
    for file in files if files is not None else shard_files(path):
        try:
            with pq.ParquetFile(file) as shard:
                yield from shard.iter_batches(batch_size=batch_size)
        except (pa.ArrowException, OSError) as exc:
            raise _damaged(file.parent, exc, [file]) from None


def _damaged(path: Path, exc: Exception, shards: list[Path] | None = None) -> DataError:
    """The error for a dataset table that cannot be read, naming the first shard whose footer is unreadable."""
    where = path
    for shard in shards if shards is not None else shard_files(path):
        try:
            pq.read_metadata(shard)
        except (pa.ArrowException, OSError) as bad:
            where, exc = shard, bad
            break
    reason = " ".join(str(exc).split())[:200]
    return DataError(
        f"{where}: cannot be read ({reason}); the dataset table is damaged: rebuild it with `latent preprocess --force`"
    )


def write_dataset_table(
    workspace,
    name: str,
    x: np.ndarray,
    labels: np.ndarray | None = None,
    ids: list[str] | None = None,
    extra: dict[str, np.ndarray] | None = None,
    shard_rows: int = 65536,
    val: float = 0.1,
    test: float = 0.1,
    shape: tuple[int, int, int] | None = None,
) -> DatasetInfo:
    """Write in-memory arrays as a dataset table (same layout and manifest as `preprocess`), e.g. features that
    are already numeric, synthetic benchmarks, or test fixtures. Reuses the table if the same content exists."""
    from latent.config import SplitConfig, stable_hash
    from latent.data.arrow import vectors_to_binary

    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise DataError(f"dataset {name!r}: expected a non-empty 2-D feature array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"dataset {name!r}: features contain NaN or infinite values")
    n, width = x.shape
    ids = ids if ids is not None else [f"{name}-{i:08d}" for i in range(n)]
    labels = np.full(n, -1, np.int64) if labels is None else np.asarray(labels, np.int64)
    extra = {k: np.asarray(v) for k, v in (extra or {}).items()}
    split_cfg = SplitConfig(val=val, test=test)
    splits = [split_of(i, split_cfg) for i in ids]

    digests = []
    for start in range(0, n, shard_rows):
        h = hashlib.sha256()
        h.update("\0".join(ids[start : start + shard_rows]).encode())
        h.update(x[start : start + shard_rows].tobytes())
        h.update(labels[start : start + shard_rows].tobytes())
        for key in sorted(extra):
            h.update(np.ascontiguousarray(extra[key][start : start + shard_rows]).tobytes())
        digests.append(h.hexdigest())
    content_hash = hashlib.sha256("".join(digests).encode()).hexdigest()
    version = stable_hash(
        {"name": name, "content": content_hash, "split": [val, test], "shape": shape, "v": SCHEMA_VERSION}
    )
    final = workspace.dataset_dir(version)
    if is_dataset_table(final):
        return read_dataset_info(final)

    schema = dataset_schema(width)
    for key, values in extra.items():
        schema = schema.append(pa.field(key, pa.from_numpy_dtype(values.dtype)))
    meta = shard_metadata(version)
    with publish_dir(final, replace=True) as staging:
        shards = []
        for i, start in enumerate(range(0, n, shard_rows)):
            stop = min(start + shard_rows, n)
            columns = [
                pa.array(ids[start:stop], pa.string()),
                pa.array(splits[start:stop], pa.string()),
                pa.array(labels[start:stop], pa.int64()),
                vectors_to_binary(x[start:stop]),
                *(pa.array(extra[key][start:stop]) for key in extra),
            ]
            part = shard_name(i)
            write_shard(pa.Table.from_arrays(columns, schema=schema.with_metadata(meta)), staging / part)
            shards.append({"file": part, "rows": stop - start, "sha256": digests[i]})
        Manifest(
            dataset_version=version,
            source_fingerprint=f"arrays:{name}",
            rows=n,
            splits={s: splits.count(s) for s in SPLITS},
            content_hash=content_hash,
            shape=(
                {"channels": shape[0], "height": shape[1], "width": shape[2]}
                if shape
                else {"height": 1, "width": width, "channels": 0}
            ),
            feature_dim=width,
            schema=schema.to_string(show_schema_metadata=False),
            shards=shards,
            transform=FeatureTransform(stored="float32"),
        ).write(staging)
    return read_dataset_info(final)
