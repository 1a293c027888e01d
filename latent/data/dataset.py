"""Reading dataset tables: their manifest and their rows as arrays for training and encoding."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from latent.data.arrow import arrow_to_vectors
from latent.errors import DataError


@dataclass(frozen=True)
class FeatureTransform:
    """How stored features become model inputs: x * scale (uint8 pixels -> [0, 1]), then missing values filled
    with train-split medians, then standardised with train-split mean and std. Recorded in the manifest and
    applied on every read, so training and encoding see identical inputs."""

    scale: float = 1.0
    fill: tuple[float, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    stored: str | None = None  # element type of the stored rows (uint8, float32); None: a table of list columns

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
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise DataError(f"{path}: not a dataset table (no manifest.json); run `latent preprocess` first")
    try:
        m = json.loads(manifest_path.read_text())
        return DatasetInfo(
            path=path,
            version=m["dataset_version"],
            rows=int(m["rows"]),
            splits=dict(m["splits"]),
            content_hash=m["content_hash"],
            feature_dim=int(m["feature_dim"]),
            shape=dict(m["shape"]),
            transform=FeatureTransform.from_json(m.get("transform")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{manifest_path}: malformed manifest ({exc!r})") from None


def _dataset(path: Path) -> ds.Dataset:
    return ds.dataset(sorted(str(p) for p in path.glob("part-*.parquet")), format="parquet")


def load_dataset_arrays(
    path: str | Path, splits: tuple[str, ...] = ("train", "val", "test")
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, x as float32 (n, d), labels) for the rows of the given splits, in table order."""
    path = Path(path)
    info = read_dataset_info(path)
    try:
        table = _dataset(path).to_table(columns=["id", "label", "x"], filter=ds.field("split").isin(list(splits)))
    except (pa.ArrowException, OSError) as exc:
        raise _damaged(path, exc) from None
    ids = np.asarray(table.column("id").to_pylist(), dtype=object)
    labels = table.column("label").to_numpy(zero_copy_only=False)
    return ids, info.transform.apply(table.column("x")), labels


DATASET_COLUMNS = ("id", "split", "label", "x")


def shard_files(path: str | Path) -> list[Path]:
    return sorted(Path(path).glob("part-*.parquet"))


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
    import hashlib

    import pyarrow as pa

    from latent.config import SplitConfig, stable_hash
    from latent.data.arrow import vectors_to_binary
    from latent.data.preprocess import (
        DATASET_COMPRESSION,
        MANIFEST,
        SCHEMA_VERSION,
        SPLITS,
        dataset_schema,
        split_of,
    )
    from latent.workspace import atomic_write_text, publish_dir

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
    if (final / MANIFEST).is_file():
        return read_dataset_info(final)

    schema = dataset_schema(width)
    for key, values in extra.items():
        schema = schema.append(pa.field(key, pa.from_numpy_dtype(values.dtype)))
    meta = {"latent.schema_version": str(SCHEMA_VERSION), "latent.dataset_version": version}
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
            part = f"part-{i:05d}.parquet"
            pq.write_table(
                pa.Table.from_arrays(columns, schema=schema.with_metadata(meta)),
                staging / part,
                compression=DATASET_COMPRESSION,
                use_dictionary=["split"],
            )
            shards.append({"file": part, "rows": stop - start, "sha256": digests[i]})
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "dataset_version": version,
            "source_fingerprint": f"arrays:{name}",
            "rows": n,
            "splits": {s: splits.count(s) for s in SPLITS},
            "content_hash": content_hash,
            "shape": (
                {"channels": shape[0], "height": shape[1], "width": shape[2]}
                if shape
                else {"height": 1, "width": width, "channels": 0}
            ),
            "feature_dim": width,
            "schema": schema.to_string(show_schema_metadata=False),
            "shards": shards,
            "transform": {"scale": 1.0, "stored": "float32"},
        }
        atomic_write_text(staging / MANIFEST, json.dumps(manifest, indent=2))
    return read_dataset_info(final)
