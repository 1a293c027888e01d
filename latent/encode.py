"""Encode: stream every row of a dataset table through a model into a latent table, published atomically.

Locally, reading, the forward pass and writing run as a three-stage pipeline (two threads beside the caller,
bounded queues), so memory stays flat whatever the dataset's size. With `encode.engine: dask`, each dataset shard
is encoded on a Dask worker, which loads the model from its MLflow URI once per process.

`append` makes the next snapshot of a table when the dataset grew: the old rows' files are linked, only the new
rows are encoded (with the table's model), and the new rows are measured against the training rows for drift
(see `latent/tables.py` for the layout, `latent/analysis/drift.py` for the figures).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

import latent
from latent.config import DaskConfig, EncodeConfig
from latent.data.dataset import (
    DatasetInfo,
    FeatureTransform,
    extra_fields,
    iter_dataset_batches,
    read_dataset_info,
    read_increment,
    shard_files,
)
from latent.data.stream import put_unless_stopped
from latent.errors import DataError
from latent.models.io import load_logged_model
from latent.progress import reporter
from latent.tables import (
    LatentTableWriter,
    is_latent_table,
    now_utc,
    publish_latent_table,
    read_table_info,
    refresh_catalog,
    table_files,
    write_table_info,
)
from latent.tracking import Tracking, link_table_to_run, log_table_input, stage_run, tag
from latent.workspace import Workspace, link_or_copy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodeResult:
    table_path: str
    rows: int
    rows_per_split: dict[str, int]
    run_id: str
    rows_per_second: float
    reused: bool
    rows_added: int = 0  # rows encoded into this table (all of them for a table encoded whole; 0 when reused)
    rows_deleted: int = 0  # rows of the previous snapshot left out of this one
    drift: dict | None = None  # appended rows: mmd2, recon_ratio, drifted
    retrained: bool = False  # the pipeline trained a new model in this run (set by the flow)
    published_path: str | None = None  # the series' published path showing this table (tables/<dataset>-<model>/)


def reused_table_result(table_path: str | Path, published_path: str | None = None) -> EncodeResult:
    """The result of an encoding that found its table already made (no MLflow run of its own)."""
    meta = read_table_info(table_path).info
    return EncodeResult(
        str(table_path), meta["rows"], meta["rows_per_split"], "", 0.0, True, published_path=published_path
    )


def _provenance(
    info: DatasetInfo,
    model: torch.nn.Module,
    model_uri: str,
    model_version: str,
    source_run_id: str | None,
    created_at: str,
) -> dict[str, str]:
    """The provenance every file of a latent table carries (Parquet key-value metadata, `latent.` prefix)."""
    return {
        "latent.mlflow_run_id": source_run_id or "",
        "latent.model_uri": model_uri,
        "latent.model_version": model_version,
        "latent.dataset_version": info.version,
        "latent.dataset_content_hash": info.content_hash,
        "latent.latent_dim": str(model.config.latent_dim),
        "latent.created_at": created_at,
        "latent.package_version": latent.__version__,
    }


def encode_device() -> torch.device:
    """This process's device for encoding: its GPU where it has one, else the CPU. A Dask worker started by
    dask-cuda (`dask cuda worker`, `LocalCUDACluster`) sees only its own GPU (CUDA_VISIBLE_DEVICES lists it first),
    so `cuda` is that worker's own device and each worker of a GPU cluster encodes on a different GPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _on_device(model: torch.nn.Module) -> torch.nn.Module:
    device = encode_device()
    return model.to(device) if device.type != "cpu" else model


@torch.inference_mode()
def encode_array(model: torch.nn.Module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z_mean, z_logvar, recon_error) for a batch: deterministic (posterior mean, decoded mean), on the model's
    device; the results come back to host memory as float32."""
    device = next(model.parameters()).device
    xt = torch.from_numpy(x).to(device, non_blocking=True)
    mean, logvar = model.encode(xt)
    err = ((model.decode(mean) - xt) ** 2).mean(-1)
    return tuple(t.float().cpu().numpy() for t in (mean, logvar, err))


_DONE = object()


def _pipelined(source: Iterator, compute: Callable, sink: Callable, depth: int = 2) -> None:
    """Run source -> compute -> sink with source and sink on their own threads and bounded queues between."""
    inbox: queue.Queue = queue.Queue(depth)
    outbox: queue.Queue = queue.Queue(depth)
    failure: list[BaseException] = []
    stop = threading.Event()

    def put(q: queue.Queue, item: object) -> bool:
        return put_unless_stopped(q, item, stop)

    def read() -> None:
        try:
            for item in source:
                if not put(inbox, item):
                    return
        except BaseException as exc:
            failure.append(exc)
            stop.set()
        finally:
            put(inbox, _DONE)

    def write() -> None:
        try:
            while True:
                item = outbox.get()
                if item is _DONE:
                    return
                sink(*item)
        except BaseException as exc:
            failure.append(exc)
            stop.set()
            while outbox.get() is not _DONE:  # drain so the producer never blocks
                pass

    reader = threading.Thread(target=read, name="latent-encode-read", daemon=True)
    writer = threading.Thread(target=write, name="latent-encode-write", daemon=True)
    reader.start()
    writer.start()
    try:
        while not stop.is_set():
            item = inbox.get()
            if item is _DONE:
                break
            outbox.put((item, compute(item)))
    except BaseException as exc:
        failure.append(exc)
        stop.set()
    finally:
        outbox.put(_DONE)
        writer.join()
        stop.set()
        reader.join()
    if failure:
        raise failure[0]


def _write_batch(writer: LatentTableWriter, batch: pa.RecordBatch, out: tuple) -> None:
    z_mean, z_logvar, err = out
    splits = batch.column("split")
    extra_names = writer.extra_names
    for split in pc.unique(splits).to_pylist():
        mask = pc.equal(splits, split)
        sel = mask.to_numpy(zero_copy_only=False)
        part = batch.filter(mask)
        writer.write(
            split,
            part.column("id"),
            part.column("label"),
            z_mean[sel],
            z_logvar[sel],
            err[sel],
            {name: part.column(name) for name in extra_names},
        )


def _encode_files(
    model: torch.nn.Module,
    files: list[Path],
    out_dir: Path,
    part: int,
    batch_size: int,
    metadata: dict[str, str],
    extra: list[pa.Field],
    transform: FeatureTransform,
    on_batch: Callable[[int], None] | None = None,
    prefix: str = "part",
) -> dict[str, int]:
    writer = LatentTableWriter(out_dir, model.config.latent_dim, metadata, extra, part=part, prefix=prefix)

    def compute(batch: pa.RecordBatch) -> tuple:
        out = encode_array(model, transform.apply(batch.column("x")))
        if on_batch is not None:
            on_batch(batch.num_rows)
        return out

    try:
        _pipelined(
            iter_dataset_batches(files[0].parent, batch_size, files),
            compute,
            lambda batch, out: _write_batch(writer, batch, out),
        )
    finally:
        writer.close()
    return dict(writer.rows)


@functools.lru_cache(maxsize=4)
def _worker_model(model_uri: str, tracking_uri: str | None) -> torch.nn.Module:
    torch.set_num_threads(1)  # one Dask worker thread per core; do not oversubscribe
    return _on_device(load_logged_model(model_uri, tracking_uri))


def encode_shard(
    shard: str,
    model_uri: str,
    tracking_uri: str | None,
    out_dir: str,
    part: int,
    batch_size: int,
    metadata: dict[str, str],
    extra: list[pa.Field],
    transform: FeatureTransform,
) -> dict[str, int]:
    """One Dask task: encode one dataset shard into `split=*/part-<part>.parquet` files under out_dir."""
    model = _worker_model(model_uri, tracking_uri)
    return _encode_files(model, [Path(shard)], Path(out_dir), part, batch_size, metadata, extra, transform)


def _same_model(a: str, b: str) -> bool:
    if a.rstrip("/") == b.rstrip("/"):
        return True
    return Path(a).is_dir() and Path(b).is_dir() and Path(a).resolve() == Path(b).resolve()


def encode(
    dataset_path: str | Path,
    model_uri: str,
    model_version: str,
    cfg: EncodeConfig,
    workspace: Workspace,
    tracking: Tracking | None,
    source_run_id: str | None = None,
    replace: bool = False,
    dask_cfg: DaskConfig | None = None,
) -> EncodeResult:
    """Write `latents/<dataset-version>/<model-version>/`; an existing complete table is reused unless replace,
    in which case the new version takes its place in one atomic exchange."""
    info = read_dataset_info(dataset_path)
    try:
        final = workspace.latent_dir(info.version, model_version)
    except DataError as exc:
        raise DataError(f"model URI {model_uri!r}: {exc}; name the model by its models:/ URI") from None
    stage_tags = {
        tag("dataset_version"): info.version,
        tag("model_uri"): model_uri,
        tag("model_version"): model_version,
    }
    with stage_run(tracking, "encode", stage_tags) as run:
        log_table_input(run, info.path, tracking.dataset_name if tracking else None, info.version, "inference")
        if is_latent_table(final) and not replace:
            meta = read_table_info(final).info
            # an MLflow model id names one model whatever URI led to it; other version names come from the URI's
            # last segment and can collide (runs:/A/model and runs:/B/model)
            if not model_version.startswith("m-") and not _same_model(meta["model"]["uri"], model_uri):
                raise DataError(
                    f"{final}: this table was encoded from model {meta['model']['uri']}, not {model_uri}, though "
                    f"both give model version {model_version!r}; name the model uniquely (models:/<model id>), "
                    "or replace the table with --force"
                )
            run.set_tags({tag("table_path"): str(final), tag("reused"): "true"})
            return EncodeResult(str(final), meta["rows"], meta["rows_per_split"], run.run_id, 0.0, True)

        tracking_uri = tracking.uri if tracking else None
        model = _on_device(load_logged_model(model_uri, tracking_uri))
        if model.config.input_dim != info.feature_dim:
            raise DataError(
                f"model {model_uri} expects inputs of {model.config.input_dim} features but dataset "
                f"{info.path} has {info.feature_dim}"
            )
        created_at = now_utc()
        metadata = _provenance(info, model, model_uri, model_version, source_run_id, created_at)
        extra = extra_fields(info.path)
        shards = shard_files(info.path)
        # auto: an external Dask cluster is there to be used; a local one would only compete with the pipeline
        engine = cfg.engine if cfg.engine != "auto" else ("dask" if dask_cfg and dask_cfg.address else "local")
        progress = reporter()
        progress.start("encode", "encode", info.rows)
        started = time.perf_counter()
        try:
            with publish_latent_table(final) as staging:
                if engine == "dask":
                    from latent.parallel import dask_client

                    with dask_client(dask_cfg or DaskConfig()) as client:
                        futures = [
                            client.submit(
                                encode_shard,
                                str(f),
                                model_uri,
                                tracking_uri,
                                str(staging),
                                i,
                                cfg.batch_size,
                                metadata,
                                extra,
                                info.transform,
                                pure=False,
                            )
                            for i, f in enumerate(shards)
                        ]
                        counts: dict[str, int] = {}
                        for future in futures:
                            for split, n in future.result().items():
                                counts[split] = counts.get(split, 0) + n
                            progress.advance("encode", sum(future.result().values()))
                else:
                    counts = _encode_files(
                        model,
                        shards,
                        staging,
                        0,
                        cfg.batch_size,
                        metadata,
                        extra,
                        info.transform,
                        on_batch=lambda n: progress.advance("encode", n),
                    )
                rows = sum(counts.values())
                if rows != info.rows:
                    raise DataError(f"{info.path}: encoded {rows} rows but the manifest lists {info.rows}")
                description = {
                    "rows": rows,
                    "rows_per_split": dict(sorted(counts.items())),
                    "latent_dim": model.config.latent_dim,
                    "columns": [f.name for f in extra],
                    "model": {"uri": model_uri, "version": model_version, "name": model.registry_name},
                    "mlflow_run_id": source_run_id,
                    "encode_run_id": run.run_id if run.enabled else None,
                    "dataset": {"version": info.version, "content_hash": info.content_hash, "path": str(info.path)},
                    "created_at": created_at,
                    "package_version": latent.__version__,
                    "trained_table": str(final),  # the reference rows of later snapshots' drift
                }
                write_table_info(staging, description)
        finally:
            progress.finish("encode")
        elapsed = time.perf_counter() - started
        refresh_catalog(workspace)
        rate = rows / elapsed if elapsed > 0 else float("nan")
        run.log_params({"batch_size": cfg.batch_size, "latent_dim": model.config.latent_dim, "engine": engine})
        run.log_metrics({"rows": rows, "rows_per_second": rate})
        run.set_tags({tag("table_path"): str(final), tag("reused"): "false"})
        if source_run_id and tracking is not None:
            link_table_to_run(tracking, source_run_id, str(final))
        logger.info("latent table %s: %d rows at %.0f rows/s", final, rows, rate)
        return EncodeResult(str(final), rows, description["rows_per_split"], run.run_id, rate, False, rows_added=rows)


def _read_columns(files: list[Path], columns: list[str]) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    from latent.data.arrow import arrow_to_vectors

    parts = [pq.read_table(f, columns=columns) for f in files]
    if not parts:
        return {c: np.zeros((0,), np.float32) for c in columns}
    table = pa.concat_tables(parts)
    return {c: arrow_to_vectors(table.column(c)) if c.startswith("z_") else table.column(c).to_numpy() for c in columns}


def _drift(staging: Path, prefix: str, reference: Path, policy) -> dict | None:
    """Drift figures of the rows just encoded (files `<prefix>-*` in staging) against the train split of the
    reference table (the one the model was encoded whole with)."""
    from latent.analysis.drift import drift_figures

    new = _read_columns(sorted(staging.glob(f"split=*/{prefix}-*.parquet")), ["z_mean", "recon_error"])
    train = _read_columns(sorted((reference / "split=train").glob("*.parquet")), ["z_mean", "recon_error"])
    return drift_figures(
        new["z_mean"],
        new["recon_error"],
        train["z_mean"],
        train["recon_error"],
        policy.drift_mmd,
        policy.drift_recon_ratio,
        policy.drift_max_rows,
    )


def append(
    dataset_path: str | Path,
    previous_table: str | Path,
    model_uri: str,
    model_version: str,
    cfg: EncodeConfig,
    policy,
    workspace: Workspace,
    tracking: Tracking | None,
    source_run_id: str | None = None,
) -> EncodeResult:
    """The dataset snapshot's latent table made from the previous snapshot's (same model): old rows' files linked,
    files holding deleted rows rewritten without them, new rows encoded; drift of the new rows measured, logged
    and tagged (`latent.drift`). policy: the train config (drift thresholds). Published atomically; reused if
    complete."""
    import pyarrow.parquet as pq

    info = read_dataset_info(dataset_path)
    increment = read_increment(info.path)
    previous = read_table_info(previous_table)
    if increment is None or increment["parent"] != previous.info["dataset"]["version"]:
        raise DataError(f"{info.path}: not a snapshot made from the dataset of table {previous.path}")
    final = workspace.latent_dir(info.version, model_version)
    stage_tags = {
        tag("dataset_version"): info.version,
        tag("model_uri"): model_uri,
        tag("model_version"): model_version,
        tag("incremental"): "true",
    }
    with stage_run(tracking, "encode", stage_tags) as run:
        if is_latent_table(final):
            meta = read_table_info(final).info
            inc = meta.get("increment") or {}
            run.set_tags({tag("table_path"): str(final), tag("reused"): "true"})
            return EncodeResult(
                str(final),
                meta["rows"],
                meta["rows_per_split"],
                run.run_id,
                0.0,
                True,
                rows_added=int(inc.get("rows_added", 0)),
                rows_deleted=int(inc.get("rows_deleted", 0)),
                drift=inc.get("drift"),
            )
        started = time.perf_counter()
        model = _on_device(load_logged_model(model_uri, tracking.uri if tracking else None))
        token = info.version[:10]
        prefix = f"part-{token}"
        metadata = _provenance(info, model, model_uri, model_version, source_run_id, now_utc())
        deleted = pa.array(increment["deleted_ids"], pa.string())
        counts: dict[str, int] = {}
        with publish_latent_table(final) as staging:
            for n, file in enumerate(table_files(previous.path)):
                (staging / file.parent.name).mkdir(exist_ok=True)
                split = file.parent.name.removeprefix("split=")
                if len(deleted) and pc.any(pc.is_in(pq.read_table(file, columns=["id"]).column("id"), deleted)).as_py():
                    table = pq.read_table(file)
                    table = table.filter(pc.invert(pc.is_in(table.column("id"), deleted)))
                    if table.num_rows:
                        pq.write_table(
                            table, staging / file.parent.name / f"{prefix}-d{n:05d}.parquet", compression="zstd"
                        )
                    counts[split] = counts.get(split, 0) + table.num_rows
                else:
                    link_or_copy(file, staging / file.parent.name / file.name)
                    counts[split] = counts.get(split, 0) + pq.read_metadata(file).num_rows
            new_files = [info.path / name for name in increment["new_shards"]]
            added = (
                _encode_files(
                    model,
                    new_files,
                    staging,
                    0,
                    cfg.batch_size,
                    metadata,
                    extra_fields(info.path),
                    info.transform,
                    prefix=prefix,
                )
                if new_files
                else {}
            )
            for split, n in added.items():
                counts[split] = counts.get(split, 0) + n
            rows = sum(counts.values())
            if rows != info.rows:
                raise DataError(f"{info.path}: the snapshot has {rows} rows but the manifest lists {info.rows}")
            reference = Path(previous.info.get("trained_table") or previous.path)
            if not is_latent_table(reference):  # swept: the previous snapshot holds the training rows too
                reference = previous.path
            drift = _drift(staging, prefix, reference, policy)
            rows_added, rows_deleted = sum(added.values()), int(increment["rows_deleted"])
            description = {
                **{k: v for k, v in previous.info.items() if k != "schema_version"},
                "rows": rows,
                "rows_per_split": dict(sorted(counts.items())),
                "encode_run_id": run.run_id if run.enabled else None,
                "dataset": {"version": info.version, "content_hash": info.content_hash, "path": str(info.path)},
                "created_at": metadata["latent.created_at"],
                "package_version": latent.__version__,
                "trained_table": str(reference),
                "increment": {
                    "parent_table": str(previous.path),
                    "rows_added": rows_added,
                    "rows_deleted": rows_deleted,
                    "drift": drift,
                },
            }
            write_table_info(staging, description)
        refresh_catalog(workspace)
        elapsed = time.perf_counter() - started
        run.log_metrics({"rows": rows, "rows_added": rows_added, "rows_deleted": rows_deleted})
        tags = {tag("table_path"): str(final), tag("reused"): "false"}
        if drift is not None:
            run.log_metrics({"drift_mmd2": drift["mmd2"], "drift_recon_ratio": drift["recon_ratio"]})
            tags[tag("drift")] = str(drift["drifted"]).lower()
        run.set_tags(tags)
        logger.info(
            "latent table %s: +%d -%d rows appended in %.2fs; drift %s", final, rows_added, rows_deleted, elapsed, drift
        )
        rate = rows_added / elapsed if elapsed > 0 else float("nan")
        return EncodeResult(
            str(final),
            rows,
            description["rows_per_split"],
            run.run_id,
            rate,
            False,
            rows_added=rows_added,
            rows_deleted=rows_deleted,
            drift=drift,
        )
