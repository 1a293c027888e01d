"""Ingest: find what a configured source holds and write its plan (and, for digits, the raw Parquet table)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from latent.config import DatasetConfig
from latent.data.sources import get_source, plan_to_json
from latent.workspace import Workspace, atomic_write_text, publish_dir, scratch_dir

logger = logging.getLogger(__name__)


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
