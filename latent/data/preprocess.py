"""Preprocess: Dask workers decode the source's partitions into a sharded, split dataset table.

Each task decodes one partition of the ingest plan (files, row ranges or generator indices), assigns splits from a
hash of each row's id, and writes one shard. The driver then writes the manifest: row counts, schema, a content
hash, and the feature transform (pixel scale; for tabular data, missing-value fill and standardisation fitted on
the train split only) that every reader applies.

A plan that ingest made from the previous plan of a grown source (`info.increment`) becomes a snapshot made from
the previous dataset table: the unchanged partitions' shards are hard-linked, only the new partitions are decoded,
and the previous table's feature transform is kept (see `latent/data/dataset.py`). A few new partitions are decoded
in this process: starting a local Dask cluster costs more than decoding them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from latent.config import DaskConfig, PreprocessConfig, SplitConfig, stable_hash
from latent.data.arrow import stored_dtype, vectors_to_binary
from latent.data.dataset import (
    MANIFEST,
    SCHEMA_VERSION,
    SPLITS,
    FeatureTransform,
    Manifest,
    dataset_schema,
    is_dataset_table,
    load_dataset_arrays,
    read_increment,
    read_manifest,
    shard_metadata,
    shard_name,
    split_of,
    write_increment,
    write_molecule_info,
    write_quarantine,
    write_shard,
    write_stats,
    write_vocabulary,
)
from latent.data.ingest import record_head
from latent.data.sources import Plan, Source, source_from_plan
from latent.errors import DataError
from latent.parallel import dask_client
from latent.workspace import Workspace, link_or_copy, publish_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreprocessResult:
    dataset_path: str
    dataset_version: str
    n_rows: int
    content_hash: str
    reused: bool
    skipped: int = 0
    images: str = ""  # image folders: the size and mode every image was brought to, and why
    parent: str = ""  # a snapshot made from a previous one: that one's dataset version
    rows_added: int = 0  # rows decoded by this preprocessing (all rows of a table built whole)
    rows_deleted: int = 0  # rows of the parent snapshot left out (deleted or changed files)


def dataset_version(fingerprint: str, cfg: PreprocessConfig) -> str:
    """Identity of a dataset table: the source content plus everything that shapes the preprocessing."""
    return stable_hash({"fingerprint": fingerprint, "preprocess": cfg.model_dump(mode="json"), "v": SCHEMA_VERSION})


@functools.lru_cache(maxsize=8)
def _plan_source(plan_file: str) -> tuple[Source, Plan]:
    path = Path(plan_file)
    return source_from_plan(json.loads(path.read_text()), path.parent)


def _preprocess_partition(plan_file: str, index: int, out_path: str, split: SplitConfig, meta: dict) -> dict:
    """One Dask task: decode partition `index` of the plan, assign splits, write one shard."""
    source, plan = _plan_source(plan_file)
    rows = source.read(plan.partitions[index])
    n = len(rows.ids)
    if n == 0:
        return {
            "file": None,
            "rows": 0,
            "counts": dict.fromkeys(SPLITS, 0),
            "sha256": "",
            "skipped": rows.skipped,
            "train_sum": 0.0,
            "train_sumsq": 0.0,
            "train_values": 0,
        }
    splits = [split_of(i, split) for i in rows.ids]
    x = rows.x if rows.x.dtype in (np.uint8, np.uint16) else rows.x.astype(np.float32)
    extra = [pa.field(k, pa.from_numpy_dtype(v.dtype)) for k, v in rows.extra.items()]
    table = pa.Table.from_arrays(
        [
            pa.array(rows.ids, pa.string()),
            pa.array(splits, pa.string()),
            rows.labels.cast(pa.int64()),
            vectors_to_binary(x),
            *(pa.array(v) for v in rows.extra.values()),
        ],
        schema=dataset_schema(x.shape[1], x.dtype, extra).with_metadata(meta),
    )
    write_shard(table, out_path)
    digest = hashlib.sha256()
    digest.update("\0".join(rows.ids).encode())
    digest.update(x.tobytes())
    digest.update(np.asarray(rows.labels.fill_null(-1).to_numpy(zero_copy_only=False), np.int64).tobytes())
    for values in rows.extra.values():
        digest.update(np.ascontiguousarray(values).tobytes())
    train = x[np.asarray(splits) == "train"].astype(np.float64) * plan.scale
    train = train[np.isfinite(train).all(1)] if train.size else train
    return {
        "file": Path(out_path).name,
        "rows": n,
        "counts": {s: splits.count(s) for s in SPLITS},
        "sha256": digest.hexdigest(),
        "skipped": rows.skipped,
        "train_sum": float(train.sum()),
        "train_sumsq": float(np.square(train).sum()),
        "train_values": int(train.size),
    }


def _fit_transform(staging: Path, plan: Plan, stored: str, standardise: bool, fill: bool) -> FeatureTransform:
    """Fill values and standardisation for tabular features, fitted on the train split only."""
    transform = FeatureTransform(scale=plan.scale, stored=stored)
    if not (standardise or fill):
        return transform
    _, x, _ = load_dataset_arrays(staging, ("train",), transform)
    if len(x) == 0:
        raise DataError(f"{staging}: the train split is empty; cannot fit the feature statistics")
    medians = np.nanmedian(x, axis=0) if fill else None
    if medians is not None and np.isnan(medians).any():
        col = int(np.flatnonzero(np.isnan(medians))[0])
        raise DataError(f"feature column {plan.info.get('features', [col])[col]!r} has no values in the train split")
    if medians is not None:
        x = np.where(np.isnan(x), medians[None, :], x)
    mean, std = x.mean(0), x.std(0)
    std = np.where(std > 0, std, 1.0)
    as_tuple = lambda v: tuple(float(a) for a in v) if v is not None else None  # noqa: E731
    return FeatureTransform(plan.scale, as_tuple(medians), as_tuple(mean), as_tuple(std), stored)


def preprocess(
    raw_path: str | Path,
    fingerprint: str,
    cfg: PreprocessConfig,
    dask_cfg: DaskConfig,
    workspace: Workspace,
    force: bool = False,
) -> PreprocessResult:
    """Build `datasets/<version>/` (shards + manifest + stats) with Dask from an ingest plan; reuse it when the
    version exists, unless force (then the new table replaces the old in one atomic exchange)."""
    version = dataset_version(fingerprint, cfg)
    final = workspace.dataset_dir(version)
    if is_dataset_table(final) and not force:
        existing = read_manifest(final)
        increment = read_increment(final) or {}
        if existing.plan and Path(existing.plan).is_file():
            record_head(workspace, existing.plan, cfg.shard_rows)
        return PreprocessResult(
            str(final),
            version,
            existing.rows,
            existing.content_hash,
            reused=True,
            skipped=len(existing.skipped or []),
            images=_describe_images(existing.image),
            parent=existing.parent or "",
            rows_added=int(increment.get("rows_added", existing.rows)),
            rows_deleted=int(increment.get("rows_deleted", 0)),
        )
    plan_file = Path(raw_path)
    if not plan_file.is_file():
        raise DataError(
            f"{plan_file}: no ingest plan for the source as it is now (new, or changed since it was ingested); "
            "run `latent ingest` first"
        )
    source, plan = source_from_plan(json.loads(plan_file.read_text()), plan_file.parent)
    fit_on_train = getattr(source, "fit_on_train", None)  # a source whose encoding is learned (text: a vocabulary)
    if fit_on_train is not None and plan.partitions:
        plan_file = fit_on_train(plan_file, cfg.split)
        source, plan = source_from_plan(json.loads(plan_file.read_text()), plan_file.parent)
    if not plan.partitions:
        raise DataError(f"{source.cfg.path or source.cfg.source}: the source has no rows")
    increment = plan.info.get("increment")
    if increment and not force:
        parent_dir = workspace.dataset_dir(dataset_version(increment["parent_fingerprint"], cfg))
        if is_dataset_table(parent_dir):
            result = _preprocess_increment(
                plan_file, fingerprint, source, plan, parent_dir, version, final, cfg, dask_cfg
            )
            record_head(workspace, plan_file, cfg.shard_rows)
            return result
    channels, height, width = plan.geometry
    meta = shard_metadata(version, plan.geometry)

    started = time.perf_counter()
    with publish_dir(final, replace=True, marker=MANIFEST) as staging, dask_client(dask_cfg) as client:
        futures = [
            client.submit(
                _preprocess_partition,
                str(plan_file),
                i,
                str(staging / shard_name(i)),
                cfg.split,
                meta,
                pure=False,
            )
            for i in range(len(plan.partitions))
        ]
        results = client.gather(futures)
        kept = [r for r in results if r["rows"]]
        skipped = [s for r in results for s in r["skipped"]]
        n_rows = sum(r["rows"] for r in kept)
        _check_skipped(source, skipped, n_rows + len(skipped))
        if n_rows == 0:
            why = f"; all {len(skipped)} files were skipped (see the reasons in the error log)" if skipped else ""
            raise DataError(f"{source.cfg.path or source.cfg.source}: no rows to preprocess{why}")
        counts = {s: sum(r["counts"][s] for r in kept) for s in SPLITS}
        if counts["train"] == 0:
            raise DataError(
                f"{source.cfg.path or source.cfg.source}: none of its {n_rows} rows fell in the train split (rows are "
                f"split by a hash of their id, val {cfg.split.val}, test {cfg.split.test}); for a table this small "
                "set preprocess.split.val=0 preprocess.split.test=0"
            )
        content_hash = hashlib.sha256("".join(r["sha256"] for r in kept).encode()).hexdigest()
        n_values = sum(r["train_values"] for r in kept)
        mean = sum(r["train_sum"] for r in kept) / max(n_values, 1)
        var = sum(r["train_sumsq"] for r in kept) / max(n_values, 1) - mean**2
        feature_dim = channels * height * width if channels else width
        schema = pq.read_schema(staging / kept[0]["file"])
        tabular = source.cfg.source == "tabular"
        transform = _fit_transform(
            staging,
            plan,
            stored_dtype(schema.field("x")).name,
            standardise=tabular,
            fill=tabular and source.cfg.tabular.missing == "median",
        )
        manifest = Manifest(
            dataset_version=version,
            source=source.cfg.source,
            source_fingerprint=fingerprint,
            plan=str(plan_file),
            rows=n_rows,
            splits=counts,
            content_hash=content_hash,
            shape={"height": height, "width": width, "channels": channels},
            feature_dim=feature_dim,
            schema=schema.to_string(show_schema_metadata=False),
            shards=[{"file": r["file"], "rows": r["rows"], "sha256": r["sha256"]} for r in kept],
            skipped=[{"file": f, "reason": why} for f, why in skipped],
            image=plan.info.get("image"),
            preprocess=cfg.model_dump(mode="json"),
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            transform=transform,
            seconds=round(time.perf_counter() - started, 3),
        )
        if skipped:
            write_quarantine(staging, skipped)
        if plan.info.get("vocabulary"):
            write_vocabulary(staging, plan.info["vocabulary"])
        if plan.info.get("molecules"):  # representation, fingerprint settings, SELFIES tokens
            write_molecule_info(staging, plan.info["molecules"])
        write_stats(staging, {"split": "train", "mean": mean, "std": float(np.sqrt(max(var, 0.0))), "values": n_values})
        manifest.write(staging)
    logger.info("dataset %s: %d rows published in %s (%d files skipped)", version, n_rows, final, len(skipped))
    record_head(workspace, plan_file, cfg.shard_rows)
    return PreprocessResult(
        str(final),
        version,
        n_rows,
        content_hash,
        False,
        len(skipped),
        _describe_images(manifest.image),
        rows_added=n_rows,
    )


INLINE_PARTITIONS = 4  # at most this many new partitions (and no dask.address): decoded in this process


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _preprocess_increment(
    plan_file: Path,
    fingerprint: str,
    source: Source,
    plan: Plan,
    parent_dir: Path,
    version: str,
    final: Path,
    cfg: PreprocessConfig,
    dask_cfg: DaskConfig,
) -> PreprocessResult:
    """A snapshot made from the parent dataset table: carried shards linked, partly deleted ones filtered, new
    partitions decoded (see the module's docstring)."""
    import pyarrow.compute as pc

    started = time.perf_counter()
    increment = plan.info["increment"]
    parent = read_manifest(parent_dir)
    parent_shards = {entry["file"]: entry for entry in parent.shards or []}
    meta = shard_metadata(version, plan.geometry)
    n_carried = len(increment["carried"])
    new_indices = list(range(n_carried, len(plan.partitions)))
    with publish_dir(final, replace=True, marker=MANIFEST) as staging:
        shards: list[dict] = []
        deleted_ids: list[str] = []
        removed = dict.fromkeys(SPLITS, 0)

        def forget(table: pa.Table) -> None:
            deleted_ids.extend(table.column("id").to_pylist())
            for split in table.column("split").to_pylist():
                removed[split] += 1

        for j, (i, gone) in enumerate(increment["carried"]):
            entry = parent_shards.get(shard_name(i))
            if entry is None:  # the partition had no readable rows
                continue
            if not gone:
                link_or_copy(parent_dir / shard_name(i), staging / shard_name(j))
                shards.append({**entry, "file": shard_name(j)})
                continue
            table = pq.read_table(parent_dir / shard_name(i))
            keep = pc.invert(pc.is_in(table.column("id"), pa.array(gone, pa.string())))
            forget(table.filter(pc.invert(keep)))
            kept = table.filter(keep)
            if kept.num_rows:
                write_shard(kept.replace_schema_metadata(meta), staging / shard_name(j))
                digest = _file_digest(staging / shard_name(j))
                shards.append({"file": shard_name(j), "rows": kept.num_rows, "sha256": digest})
        for i in increment["dropped"]:
            if shard_name(i) in parent_shards:
                forget(pq.read_table(parent_dir / shard_name(i), columns=["id", "split"]))

        args = [(str(plan_file), i, str(staging / shard_name(i)), cfg.split, meta) for i in new_indices]
        if len(args) <= INLINE_PARTITIONS and not dask_cfg.address:
            results = [_preprocess_partition(*a) for a in args]
        else:
            with dask_client(dask_cfg) as client:
                results = client.gather([client.submit(_preprocess_partition, *a, pure=False) for a in args])
        kept_new = [r for r in results if r["rows"]]
        skipped = [s for r in results for s in r["skipped"]]
        added = sum(r["rows"] for r in kept_new)
        _check_skipped(source, skipped, added + len(skipped))
        shards += [{"file": r["file"], "rows": r["rows"], "sha256": r["sha256"]} for r in kept_new]
        n_rows = sum(e["rows"] for e in shards)
        if n_rows == 0:
            raise DataError(f"{source.cfg.path or source.cfg.source}: no rows left to preprocess")
        counts = {s: parent.splits.get(s, 0) - removed[s] + sum(r["counts"][s] for r in kept_new) for s in SPLITS}
        manifest = dataclasses.replace(
            parent,
            dataset_version=version,
            source_fingerprint=fingerprint,
            plan=str(plan_file),
            rows=n_rows,
            splits=counts,
            content_hash=hashlib.sha256("".join(e["sha256"] for e in shards).encode()).hexdigest(),
            shards=shards,
            skipped=[{"file": f, "reason": why} for f, why in skipped],
            preprocess=cfg.model_dump(mode="json"),
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            seconds=round(time.perf_counter() - started, 3),
            parent=parent.dataset_version,
        )
        if skipped:
            write_quarantine(staging, skipped)
        for name in ("stats.json", "vocabulary.json", "molecules.json"):
            if (parent_dir / name).is_file():
                link_or_copy(parent_dir / name, staging / name)
        write_increment(
            staging,
            {
                "parent": parent.dataset_version,
                "rows_added": added,
                "rows_deleted": len(deleted_ids),
                "new_shards": [r["file"] for r in kept_new],
                "deleted_ids": deleted_ids,
            },
        )
        manifest.write(staging)
    logger.info(
        "dataset %s: snapshot of %s, %d rows (+%d, -%d) published in %s",
        version,
        parent.dataset_version,
        n_rows,
        added,
        len(deleted_ids),
        final,
    )
    return PreprocessResult(
        str(final),
        version,
        n_rows,
        manifest.content_hash,
        False,
        len(skipped),
        _describe_images(manifest.image),
        parent=parent.dataset_version,
        rows_added=added,
        rows_deleted=len(deleted_ids),
    )


def _describe_images(image: dict | None) -> str:
    if not image:
        return ""
    h, w = image["size"]
    return f"{h}x{w} {image['mode']} ({image['rule']}); {image['transform']}"


def _check_skipped(source, skipped: list[tuple[str, str]], files: int) -> None:
    """on_bad_file: skip has a ceiling: more unreadable files than dataset.image.max_skipped_fraction fails."""
    limit = source.cfg.image.max_skipped_fraction
    if skipped and len(skipped) > limit * files:
        first = "; ".join(why for _, why in skipped[:3])
        raise DataError(
            f"{source.cfg.path}: {len(skipped)} of {files} files are not readable images, more than "
            f"dataset.image.max_skipped_fraction ({limit:g}); first: {first}"
        )
