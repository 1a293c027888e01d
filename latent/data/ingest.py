"""Ingest: read a configured source into a raw Parquet table with a stable `id` per row."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from latent.config import DatasetConfig, stable_hash
from latent.data.arrow import vectors_to_arrow
from latent.errors import DataError
from latent.workspace import Workspace, atomic_write_text, publish_dir

RAW_FILE = "raw.parquet"
RAW_ROW_GROUP = 256  # preprocessing distributes whole row groups to Dask workers


@dataclass(frozen=True)
class IngestResult:
    raw_path: str
    fingerprint: str
    n_rows: int
    reused: bool


def source_fingerprint(dataset: DatasetConfig) -> str:
    """Identity of the source's content. Built-in sources: generator name + version."""
    if dataset.source == "digits":
        import sklearn

        return stable_hash({"source": "digits", "sklearn": sklearn.__version__})
    raise DataError(f"dataset.source: unsupported source {dataset.source!r}")


def _digits_table() -> pa.Table:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)  # values 0..16
    n, height, width = images.shape
    pixels = images.reshape(n, height * width).astype(np.uint8)
    table = pa.table(
        {
            "id": pa.array([f"digits-{i:05d}" for i in range(n)], pa.string()),
            "label": pa.array(np.asarray(bunch.target, dtype=np.int64)),
            "pixels": vectors_to_arrow(pixels),
        }
    )
    meta = {"height": height, "width": width, "channels": 1, "pixel_max": 16, "source": "digits"}
    return table.replace_schema_metadata({f"latent.{k}": str(v) for k, v in meta.items()})


def ingest(dataset: DatasetConfig, workspace: Workspace, force: bool = False) -> IngestResult:
    """Write the source as `raw/<fingerprint>/raw.parquet`; reuse it when it exists, unless force."""
    fingerprint = source_fingerprint(dataset)
    final = workspace.raw_dir(fingerprint)
    raw_path = final / RAW_FILE
    if raw_path.is_file() and not force:
        return IngestResult(str(raw_path), fingerprint, pq.ParquetFile(raw_path).metadata.num_rows, reused=True)

    table = _digits_table()
    if table.num_rows == 0:
        raise DataError(f"dataset.source={dataset.source}: the source has no rows")
    with publish_dir(final, replace=True) as staging:
        pq.write_table(table, staging / RAW_FILE, row_group_size=RAW_ROW_GROUP, compression="zstd")
        info = {"source": dataset.source, "fingerprint": fingerprint, "rows": table.num_rows}
        atomic_write_text(staging / "source.json", json.dumps(info, indent=2))
    return IngestResult(str(raw_path), fingerprint, table.num_rows, reused=False)


def read_raw_metadata(raw_path: str | Path) -> dict[str, str]:
    meta = pq.read_schema(raw_path).metadata or {}
    return {k.decode().removeprefix("latent."): v.decode() for k, v in meta.items() if k.startswith(b"latent.")}
