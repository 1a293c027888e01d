"""Ingest: find what a configured source holds and write its plan (and, for digits, the raw Parquet table).

Incremental sources (image folders, npz and tabular globs: those whose `Source.units` lists files) record every
file's size and modification time in the plan (`info.files`). When such a source changes, ingest compares it with
the last plan of the same source config that was preprocessed (`heads/source-<key>.json` points at it) instead of planning it afresh: the
partitions of the old plan whose files are unchanged are kept as they were (an image-folder partition that lost
some files keeps the rest), and the new and changed files become new partitions, after them. The plan's
`info.increment` says which: `carried` ([index in the parent plan, files left out]), `dropped` (parent partitions
with no file left), the `added`, `changed` and `deleted` files, and the parent plan and fingerprint, from which
preprocessing finds the previous dataset snapshot and decodes only the new partitions.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from latent.config import DatasetConfig, stable_hash
from latent.data.sources import Plan, Source, get_source, plan_to_json
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


def head_path(workspace: Workspace, dataset: DatasetConfig, shard_rows: int) -> Path:
    """`heads/source-<key>.json`: the last plan of this source config (same path, options and shard size)."""
    key = stable_hash({"dataset": dataset.model_dump(mode="json"), "shard_rows": shard_rows})
    return workspace.root / "heads" / f"source-{key}.json"


def record_head(workspace: Workspace, plan_file: str | Path, shard_rows: int) -> None:
    """Make the plan the last one of its source config: preprocessing calls this once the plan's dataset table is
    published, so that the next ingest of a grown source is planned against a plan whose table exists."""
    plan = json.loads(Path(plan_file).read_text())
    if "files" not in plan.get("info", {}):  # not an incremental source
        return
    head = head_path(workspace, DatasetConfig.model_validate(plan["dataset"]), shard_rows)
    text = json.dumps({"plan": str(plan_file), "fingerprint": plan["fingerprint"]})
    if not head.is_file() or head.read_text() != text:
        atomic_write_text(head, text)


def _previous_plan(workspace: Workspace, dataset: DatasetConfig, shard_rows: int) -> tuple[Path, dict] | None:
    head = head_path(workspace, dataset, shard_rows)
    try:
        plan_file = Path(json.loads(head.read_text())["plan"])
        previous = json.loads(plan_file.read_text())
    except (OSError, ValueError, KeyError):
        return None
    return (plan_file, previous) if "files" in previous.get("info", {}) else None


def _increment(source: Source, raw_dir: Path, shard_rows: int, parent: tuple[Path, dict], units: dict) -> Plan:
    """The plan of a changed source: the parent plan's partitions whose files are unchanged, then new partitions
    for the new and changed files (see the module's docstring)."""
    parent_file, previous = parent
    old = previous["info"]["files"]
    added = [k for k in units if k not in old]
    changed = [k for k in units if k in old and list(old[k]) != list(units[k])]
    deleted = [k for k in old if k not in units]
    gone = set(changed) | set(deleted)
    partitions, carried, dropped = [], [], []
    for i, part in enumerate(previous["partitions"]):
        keys = source.partition_units(part)
        removed = [k for k in keys if k in gone]
        if not removed:
            partitions.append(part)
            carried.append([i, []])
        elif len(removed) < len(keys):  # an image-folder partition that lost some of its files
            partitions.append([entry for entry, k in zip(part, keys, strict=True) if k not in gone])
            carried.append([i, removed])
        else:
            dropped.append(i)
    parent_plan = Plan(
        previous["partitions"], tuple(previous["geometry"]), previous["scale"], previous["rows"], previous["info"]
    )
    fresh = sorted(added + changed)
    new = source.plan_units(raw_dir, shard_rows, fresh, parent_plan) if fresh else None
    info = {**previous["info"], **(new.info if new else {}), "files": units}
    info["increment"] = {
        "parent_plan": str(parent_file),
        "parent_fingerprint": previous["fingerprint"],
        "carried": carried,
        "dropped": dropped,
        "new_partitions": len(new.partitions) if new else 0,
        "added": added,
        "changed": changed,
        "deleted": deleted,
    }
    logger.info(
        "incremental ingest: %d new, %d changed, %d deleted files; %d partitions kept, %d new",
        len(added),
        len(changed),
        len(deleted),
        len(carried),
        info["increment"]["new_partitions"],
    )
    return Plan(partitions + (new.partitions if new else []), parent_plan.geometry, parent_plan.scale, None, info)


def ingest(
    dataset: DatasetConfig,
    workspace: Workspace,
    force: bool = False,
    shard_rows: int = 512,
    incremental: bool = True,
) -> IngestResult:
    """Write `raw/<fingerprint>/plan-<shard_rows>.json`; reuse it when it exists, unless force. A changed
    incremental source is planned against its last plan (unless force or not incremental)."""
    source = get_source(dataset)
    fingerprint = source.fingerprint()
    final = workspace.raw_dir(fingerprint)
    plan_file = plan_path(workspace, fingerprint, shard_rows)
    if plan_file.is_file() and not force:
        return IngestResult(str(plan_file), fingerprint, int(json.loads(plan_file.read_text())["rows"] or 0), True)
    units = source.units()
    parent = _previous_plan(workspace, dataset, shard_rows) if incremental and units is not None and not force else None
    if parent is not None and parent[1].get("fingerprint") != fingerprint:
        with publish_dir(final, replace=True) as staging:
            plan = _increment(source, staging, shard_rows, parent, units)
            atomic_write_text(staging / plan_file.name, plan_to_json(plan, dataset, fingerprint))
        return IngestResult(str(plan_file), fingerprint, int(plan.rows or 0), reused=False)
    if final.is_dir() and not force:
        # The source's content is ingested already (same fingerprint) with another shard size: add this size's plan
        # beside the others, which a run with that size may be reading. Raw files the source writes (digits) are
        # deterministic, so the plan reads the copies already there; the fresh ones are dropped with the scratch.
        with scratch_dir(final) as scratch:
            plan = source.plan(scratch, shard_rows)
            if units is not None:
                plan.info["files"] = units
            atomic_write_text(plan_file, plan_to_json(plan, dataset, fingerprint))
        return IngestResult(str(plan_file), fingerprint, int(plan.rows or 0), reused=False)
    with publish_dir(final, replace=True) as staging:
        plan = source.plan(staging, shard_rows)
        if units is not None:
            plan.info["files"] = units  # what the next plan of this source is compared with
        atomic_write_text(staging / plan_file.name, plan_to_json(plan, dataset, fingerprint))
    logger.info("ingested %s: %s rows planned in %s", dataset.source, plan.rows, plan_file)
    return IngestResult(str(plan_file), fingerprint, int(plan.rows or 0), reused=False)
