"""Reading dataset tables: their manifest and their rows as arrays for training and encoding."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from latent.data.arrow import arrow_to_vectors
from latent.errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    path: Path
    version: str
    rows: int
    splits: dict[str, int]
    content_hash: str
    feature_dim: int
    shape: dict[str, int]


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
    read_dataset_info(path)
    table = _dataset(path).to_table(columns=["id", "label", "x"], filter=ds.field("split").isin(list(splits)))
    ids = np.asarray(table.column("id").to_pylist(), dtype=object)
    labels = table.column("label").to_numpy(zero_copy_only=False)
    return ids, arrow_to_vectors(table.column("x")), labels


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
    """Stream record batches of at most batch_size rows, reading ahead one file and one batch (bounded memory)."""
    files = files if files is not None else shard_files(path)
    dataset = ds.dataset([str(f) for f in files], format="parquet")
    yield from dataset.to_batches(batch_size=batch_size, batch_readahead=1, fragment_readahead=1)
