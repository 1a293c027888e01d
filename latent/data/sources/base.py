"""The base of every dataset source: a Source lists its data at ingest (a Plan of partitions, written as the plan
file) and decodes one partition into Rows on a Dask worker at preprocessing. Sources register by name
(`dataset.source`); a new source is one module with a `Source` subclass under `@register_source`, imported in
`latent/data/sources/__init__.py`.

Every problem with the input is a DataError naming the file and what was wrong.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from latent.config import DatasetConfig, stable_hash
from latent.errors import DataError

RAW_FILE = "raw.parquet"  # a source that copies its input at ingest (digits, text) writes it here, in the raw dir
RAW_ROW_GROUP = 256  # preprocessing distributes whole row groups of it to Dask workers


@dataclass
class Rows:
    """A decoded partition: ids, features (n, d) as uint8 or float32, labels (nullable), extra columns."""

    ids: list[str]
    x: np.ndarray
    labels: pa.Array
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason), image folders with skip


@dataclass
class Plan:
    """What ingest found: partitions for the workers and the data's geometry."""

    partitions: list[Any]
    geometry: tuple[int, int, int]  # channels, height, width (0, 1, d for plain features)
    scale: float  # stored value × scale = model input (1/255 for 8-bit pixels)
    rows: int | None
    info: dict[str, Any] = field(default_factory=dict)


class Source:
    """A kind of input, named by `dataset.source`. At ingest, `fingerprint` names its content and `plan` lists
    it (writing any raw copy into raw_dir); on a Dask worker, the source is rebuilt from the plan file
    (`source_from_plan`: `plan_info` is the plan's info, `raw_path` its raw copy) and `read` decodes one
    partition. A source whose encoding is learned from the train split (text: the vocabulary) also has
    `fit_on_train(plan_file, split) -> plan_file`, which preprocessing calls before the workers start."""

    name: ClassVar[str]

    def __init__(self, cfg: DatasetConfig) -> None:
        self.cfg = cfg
        self.plan_info: dict[str, Any] = {}
        self.raw_path = ""

    def fingerprint(self) -> str:
        raise NotImplementedError

    def plan(self, raw_dir: Path, shard_rows: int) -> Plan:
        raise NotImplementedError

    def read(self, partition: Any) -> Rows:
        raise NotImplementedError

    # ---- incremental ingest (image folders, npz and tabular globs); see latent/data/ingest.py ----

    def units(self) -> dict[str, list[int]] | None:
        """Every file the source reads, `{key: [size, mtime_ns]}` (one stat each), so that ingest can tell new,
        changed and deleted files from the last plan's; None: the source is planned and decoded whole."""
        return None

    def partition_units(self, partition: Any) -> list[str]:
        """The keys of `units` that a partition of this source's plan reads."""
        raise NotImplementedError

    def plan_units(self, raw_dir: Path, shard_rows: int, units: list[str], previous: Plan) -> Plan:
        """A plan of the given files only, shaped like the previous plan (same geometry, features, classes)."""
        raise NotImplementedError


SOURCES: dict[str, type[Source]] = {}


def register_source(cls: type[Source]) -> type[Source]:
    SOURCES[cls.name] = cls
    return cls


def get_source(cfg: DatasetConfig) -> Source:
    try:
        return SOURCES[cfg.source](cfg)
    except KeyError:
        raise DataError(
            f"dataset.source {cfg.source!r}: no such source (known: {', '.join(sorted(SOURCES))})"
        ) from None


def matching_files(pattern: str, what: str) -> list[Path]:
    """Files matching a path or glob, sorted; an error naming the pattern if none."""
    paths = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True))
    files = [p for p in paths if p.is_file()]
    if not files:
        raise DataError(f"dataset.path {pattern}: no {what} found")
    return files


def file_fingerprint(files: list[Path], options: dict) -> str:
    """Paths + sizes + modification times (fast), with the options that shape decoding."""
    stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return stable_hash({"files": stats, "options": options})


def file_units(files: list[Path]) -> dict[str, list[int]]:
    """`{path: [size, mtime_ns]}` of files named by their resolved path."""
    out = {}
    for f in files:
        st = f.stat()
        out[str(f.resolve())] = [st.st_size, st.st_mtime_ns]
    return out


def labels_array(values: np.ndarray | None, n: int) -> pa.Array:
    if values is None:
        return pa.nulls(n, pa.int64())
    return pa.array(np.asarray(values, dtype=np.int64))


def class_codes(labels: list) -> tuple[list[int | None], list[str]]:
    """Labels read from a column as integer codes: integers as they are (no class names), anything else coded in
    sorted order of its text, with those class names; missing labels stay None."""
    present = [v for v in labels if v is not None]
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return list(labels), []
    classes = sorted({str(v) for v in present})
    index = {c: i for i, c in enumerate(classes)}
    return [index[str(v)] if v is not None else None for v in labels], classes


def write_raw_table(table: pa.Table, raw_dir: Path, shard_rows: int) -> list[list[int]]:
    """Write a source's copy of its input as `raw.parquet` in row groups of RAW_ROW_GROUP rows, and return the plan's
    partitions: consecutive row groups of about `shard_rows` rows each."""
    import pyarrow.parquet as pq

    pq.write_table(table, raw_dir / RAW_FILE, row_group_size=RAW_ROW_GROUP, compression="zstd")
    groups = list(range(pq.ParquetFile(raw_dir / RAW_FILE).metadata.num_row_groups))
    per = max(1, round(shard_rows / RAW_ROW_GROUP))
    return [groups[i : i + per] for i in range(0, len(groups), per)]


def check_finite(x: np.ndarray, where: str) -> None:
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise DataError(f"{where}: non-finite value {x[tuple(bad)]} at row {bad[0]}")


def plan_to_json(plan: Plan, cfg: DatasetConfig, fingerprint: str) -> str:
    return json.dumps(
        {
            "dataset": cfg.model_dump(mode="json"),
            "fingerprint": fingerprint,
            "partitions": plan.partitions,
            "geometry": list(plan.geometry),
            "scale": plan.scale,
            "rows": plan.rows,
            "info": plan.info,
        },
        indent=1,
    )


def source_from_plan(plan: dict, plan_dir: Path) -> tuple[Source, Plan]:
    """Rebuild the source (with what ingest learned) from a plan file's contents, e.g. on a Dask worker."""
    cfg = DatasetConfig.model_validate(plan["dataset"])
    source = get_source(cfg)
    source.plan_info = plan["info"]
    source.raw_path = str(plan_dir / plan["info"]["raw"]) if plan["info"].get("raw") else ""
    return source, Plan(plan["partitions"], tuple(plan["geometry"]), plan["scale"], plan["rows"], plan["info"])
