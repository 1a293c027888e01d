"""The `digits` source: scikit-learn's bundled 8×8 digits, copied at ingest into the raw Parquet table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from latent.config import stable_hash
from latent.data.arrow import arrow_to_vectors, vectors_to_arrow
from latent.data.sources.base import (
    RAW_FILE,
    RAW_ROW_GROUP,
    Plan,
    Rows,
    Source,
    register_source,
)


def write_digits_raw(directory: Path) -> Path:
    """scikit-learn's digits as a raw Parquet table: a stable `id` per row, label, 8-bit pixels (0..16)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images)
    n, height, width = images.shape
    table = pa.table(
        {
            "id": pa.array([f"digits-{i:05d}" for i in range(n)], pa.string()),
            "label": pa.array(np.asarray(bunch.target, dtype=np.int64)),
            "pixels": vectors_to_arrow(images.reshape(n, height * width).astype(np.uint8)),
        }
    )
    meta = {"height": height, "width": width, "channels": 1, "pixel_max": 16, "source": "digits"}
    table = table.replace_schema_metadata({f"latent.{k}": str(v) for k, v in meta.items()})
    path = directory / RAW_FILE
    pq.write_table(table, path, row_group_size=RAW_ROW_GROUP, compression="zstd")
    return path


@register_source
class DigitsSource(Source):
    name = "digits"

    def fingerprint(self) -> str:
        import sklearn

        return stable_hash({"source": "digits", "sklearn": sklearn.__version__})

    def plan(self, raw_dir: Path, shard_rows: int) -> Plan:
        raw = write_digits_raw(raw_dir)
        meta = pq.ParquetFile(raw).metadata
        group_rows = meta.row_group(0).num_rows
        per = max(1, round(shard_rows / group_rows))
        groups = list(range(meta.num_row_groups))
        return Plan(
            [groups[i : i + per] for i in range(0, len(groups), per)],
            (1, 8, 8),
            1.0 / 16,
            meta.num_rows,
            {"raw": raw.name},
        )

    def read(self, partition: list[int]) -> Rows:
        table = pq.ParquetFile(self.raw_path).read_row_groups(partition)
        pixels = arrow_to_vectors(table.column("pixels"), np.uint8)
        return Rows(table.column("id").to_pylist(), pixels, table.column("label").combine_chunks())
