"""Latent tables: the Parquet layout analysts read, its writer and its reader.

Layout: `latents/<dataset-version>/<model-version>/split=<split>/part-00000.parquet` (Hive-partitioned, so
`split` comes from the directory name) plus `_table.json` with the provenance. Columns: `id`, `label`, `z_mean`
and `z_logvar` as fixed_size_list<float32>[k], `recon_error`. Provenance is also in each file's key-value
metadata under the `latent.` prefix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from latent.data.arrow import arrow_to_vectors, vectors_to_arrow
from latent.errors import DataError
from latent.workspace import is_temporary

SCHEMA_VERSION = 1
TABLE_JSON = "_table.json"  # leading underscore: Parquet readers skip it when listing the directory


def latent_schema(latent_dim: int, metadata: dict[str, str] | None = None) -> pa.Schema:
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("label", pa.int64()),
            ("z_mean", pa.list_(pa.float32(), latent_dim)),
            ("z_logvar", pa.list_(pa.float32(), latent_dim)),
            ("recon_error", pa.float32()),
        ]
    )
    meta = {"latent.schema_version": str(SCHEMA_VERSION), **(metadata or {})}
    return schema.with_metadata({k: str(v) for k, v in meta.items()})


class LatentTableWriter:
    """Streams batches into one Parquet file per split (zstd; no dictionary for float columns)."""

    def __init__(self, directory: Path, latent_dim: int, metadata: dict[str, str]) -> None:
        self.directory = directory
        self.schema = latent_schema(latent_dim, metadata)
        self._writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {}

    def write(
        self,
        split: str,
        ids: list[str],
        labels: np.ndarray,
        z_mean: np.ndarray,
        z_logvar: np.ndarray,
        recon_error: np.ndarray,
    ) -> None:
        if split not in self._writers:
            part = self.directory / f"split={split}"
            part.mkdir(parents=True, exist_ok=True)
            self._writers[split] = pq.ParquetWriter(
                part / "part-00000.parquet",
                self.schema,
                compression="zstd",
                use_dictionary=["id"],
                write_statistics=["id", "label", "recon_error"],
            )
            self.rows[split] = 0
        batch = pa.record_batch(
            [
                pa.array(ids, pa.string()),
                pa.array(labels, pa.int64()),
                vectors_to_arrow(z_mean.astype(np.float32, copy=False)),
                vectors_to_arrow(z_logvar.astype(np.float32, copy=False)),
                pa.array(recon_error.astype(np.float32, copy=False)),
            ],
            schema=self.schema,
        )
        self._writers[split].write_batch(batch)
        self.rows[split] += len(ids)

    def close(self) -> None:
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


def read_table_info(path: str | Path) -> LatentTable:
    path = Path(path)
    meta_path = path / TABLE_JSON
    if not meta_path.is_file():
        raise DataError(f"{path}: not a latent table (no {TABLE_JSON}); run `latent encode` first")
    try:
        return LatentTable(path, json.loads(meta_path.read_text()))
    except ValueError as exc:
        raise DataError(f"{meta_path}: malformed table description ({exc})") from None


def open_latent_dataset(path: str | Path) -> ds.Dataset:
    """The latent table as a pyarrow dataset (with `split` from the partition directories)."""
    table = read_table_info(path)
    files = sorted(str(p) for p in table.path.glob("split=*/*.parquet") if not is_temporary(p.parent))
    return ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=str(table.path))


def read_latent_table(path: str | Path, columns: list[str] | None = None):
    """The latent table as a pandas DataFrame (vectors as NumPy arrays per row)."""
    return open_latent_dataset(path).to_table(columns=columns).to_pandas()


def load_latent_arrays(path: str | Path, splits: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """ids, split, label, z_mean (n, k), z_logvar (n, k), recon_error as arrays, ordered by id."""
    dataset = open_latent_dataset(path)
    flt = ds.field("split").isin(list(splits)) if splits else None
    table = dataset.to_table(filter=flt).sort_by("id")
    return {
        "id": np.asarray(table.column("id").to_pylist(), dtype=object),
        "split": np.asarray(table.column("split").to_pylist(), dtype=object),
        "label": table.column("label").to_numpy(zero_copy_only=False),
        "z_mean": arrow_to_vectors(table.column("z_mean")),
        "z_logvar": arrow_to_vectors(table.column("z_logvar")),
        "recon_error": table.column("recon_error").to_numpy(zero_copy_only=False),
    }
