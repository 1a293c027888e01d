"""Encode: stream every row of a dataset table through a model into a latent table, published atomically."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import latent
from latent.config import EncodeConfig
from latent.data.arrow import arrow_to_vectors
from latent.data.dataset import iter_dataset_batches, read_dataset_info
from latent.errors import DataError
from latent.models.io import load_logged_model
from latent.progress import reporter
from latent.tables import SCHEMA_VERSION, TABLE_JSON, LatentTableWriter
from latent.tracking import Tracking, link_table_to_run, stage_run, tag
from latent.workspace import Workspace, atomic_write_text, publish_dir


@dataclass(frozen=True)
class EncodeResult:
    table_path: str
    rows: int
    rows_per_split: dict[str, int]
    run_id: str
    rows_per_second: float
    reused: bool


@torch.no_grad()
def encode_array(model: torch.nn.Module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z_mean, z_logvar, recon_error) for a batch: deterministic (posterior mean, decoded mean)."""
    xt = torch.from_numpy(x)
    mean, logvar = model.encode(xt)
    recon = model.decode(mean)
    err = ((recon - xt) ** 2).mean(-1)
    return mean.numpy(), logvar.numpy(), err.numpy()


def encode(
    dataset_path: str | Path,
    model_uri: str,
    model_version: str,
    cfg: EncodeConfig,
    workspace: Workspace,
    tracking: Tracking | None,
    source_run_id: str | None = None,
    replace: bool = False,
) -> EncodeResult:
    """Write `latents/<dataset-version>/<model-version>/`; an existing complete table is reused unless replace."""
    info = read_dataset_info(dataset_path)
    final = workspace.latent_dir(info.version, model_version)
    stage_tags = {
        tag("dataset_version"): info.version,
        tag("model_uri"): model_uri,
        tag("model_version"): model_version,
    }
    with stage_run(tracking, "encode", stage_tags) as run:
        if (final / TABLE_JSON).is_file() and not replace:
            meta = json.loads((final / TABLE_JSON).read_text())
            run.set_tags({tag("table_path"): str(final), tag("reused"): "true"})
            return EncodeResult(str(final), meta["rows"], meta["rows_per_split"], run.run_id, 0.0, True)

        model = load_logged_model(model_uri, tracking.uri if tracking else None)
        if model.config.input_dim != info.feature_dim:
            raise DataError(
                f"model {model_uri} expects inputs of {model.config.input_dim} features but dataset "
                f"{info.path} has {info.feature_dim}"
            )
        metadata = {
            "latent.mlflow_run_id": source_run_id or "",
            "latent.model_uri": model_uri,
            "latent.model_version": model_version,
            "latent.dataset_version": info.version,
            "latent.dataset_content_hash": info.content_hash,
            "latent.latent_dim": str(model.config.latent_dim),
            "latent.created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "latent.package_version": latent.__version__,
        }
        progress = reporter()
        progress.start("encode", "encode", info.rows)
        started = time.perf_counter()
        try:
            with publish_dir(final, replace=True) as staging:
                writer = LatentTableWriter(staging, model.config.latent_dim, metadata)
                try:
                    for batch in iter_dataset_batches(info.path, cfg.batch_size):
                        x = arrow_to_vectors(batch.column("x"))
                        z_mean, z_logvar, err = encode_array(model, x)
                        ids = batch.column("id").to_pylist()
                        splits = np.asarray(batch.column("split").to_pylist(), dtype=object)
                        labels = batch.column("label").to_numpy(zero_copy_only=False)
                        for split in np.unique(splits):
                            sel = splits == split
                            writer.write(
                                str(split),
                                [i for i, keep in zip(ids, sel, strict=True) if keep],
                                labels[sel],
                                z_mean[sel],
                                z_logvar[sel],
                                err[sel],
                            )
                        progress.advance("encode", len(ids))
                finally:
                    writer.close()
                rows = sum(writer.rows.values())
                if rows != info.rows:
                    raise DataError(f"{info.path}: encoded {rows} rows but the manifest lists {info.rows}")
                description = {
                    "schema_version": SCHEMA_VERSION,
                    "rows": rows,
                    "rows_per_split": dict(sorted(writer.rows.items())),
                    "latent_dim": model.config.latent_dim,
                    "model": {"uri": model_uri, "version": model_version, "name": model.registry_name},
                    "mlflow_run_id": source_run_id,
                    "encode_run_id": run.run_id,
                    "dataset": {"version": info.version, "content_hash": info.content_hash, "path": str(info.path)},
                    "created_at": metadata["latent.created_at"],
                    "package_version": latent.__version__,
                }
                atomic_write_text(staging / TABLE_JSON, json.dumps(description, indent=2))
        finally:
            progress.finish("encode")
        elapsed = time.perf_counter() - started
        rate = rows / elapsed if elapsed > 0 else float("nan")
        run.log_params({"batch_size": cfg.batch_size, "latent_dim": model.config.latent_dim})
        run.log_metrics({"rows": rows, "rows_per_second": rate})
        run.set_tags({tag("table_path"): str(final), tag("reused"): "false"})
        if source_run_id and tracking is not None:
            link_table_to_run(tracking, source_run_id, str(final))
        return EncodeResult(str(final), rows, description["rows_per_split"], run.run_id, rate, False)
