"""Ingest: find what a configured source holds and write its plan (and, for digits, the raw Parquet table)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from latent.config import DatasetConfig
from latent.data.arrow import vectors_to_arrow
from latent.data.sources import get_source, plan_to_json
from latent.workspace import Workspace, atomic_write_text, publish_dir, scratch_dir

logger = logging.getLogger(__name__)

RAW_FILE = "raw.parquet"
RAW_ROW_GROUP = 256  # preprocessing distributes whole row groups to Dask workers


@dataclass(frozen=True)
class IngestResult:
    raw_path: str  # the plan file that preprocessing reads
    fingerprint: str
    n_rows: int
    reused: bool


def source_fingerprint(dataset: DatasetConfig) -> str:
    """Identity of the source's content: generator name + parameters, or file paths + sizes + mtimes."""
    return get_source(dataset).fingerprint()


def plan_path(workspace: Workspace, fingerprint: str, shard_rows: int) -> Path:
    return workspace.raw_dir(fingerprint) / f"plan-{shard_rows}.json"


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


def ingest(dataset: DatasetConfig, workspace: Workspace, force: bool = False, shard_rows: int = 512) -> IngestResult:
    """Write `raw/<fingerprint>/plan-<shard_rows>.json`; reuse it when it exists, unless force."""
    source = get_source(dataset)
    fingerprint = source.fingerprint()
    final = workspace.raw_dir(fingerprint)
    plan_file = plan_path(workspace, fingerprint, shard_rows)
    if plan_file.is_file() and not force:
        return IngestResult(str(plan_file), fingerprint, int(json.loads(plan_file.read_text())["rows"] or 0), True)
    if final.is_dir() and not force:
        # The source's content is ingested already (same fingerprint) with another shard size: add this size's plan
        # beside the others, which a run with that size may be reading. Raw files the source writes (digits) are
        # deterministic, so the plan reads the copies already there; the fresh ones are dropped with the scratch.
        with scratch_dir(final) as scratch:
            plan = source.plan(scratch, shard_rows)
            atomic_write_text(plan_file, plan_to_json(plan, dataset, fingerprint))
        return IngestResult(str(plan_file), fingerprint, int(plan.rows or 0), reused=False)
    with publish_dir(final, replace=True) as staging:
        plan = source.plan(staging, shard_rows)
        atomic_write_text(staging / plan_file.name, plan_to_json(plan, dataset, fingerprint))
    logger.info("ingested %s: %s rows planned in %s", dataset.source, plan.rows, plan_file)
    return IngestResult(str(plan_file), fingerprint, int(plan.rows or 0), reused=False)


def read_raw_metadata(raw_path: str | Path) -> dict[str, str]:
    meta = pq.read_schema(raw_path).metadata or {}
    return {k.decode().removeprefix("latent."): v.decode() for k, v in meta.items() if k.startswith(b"latent.")}
