"""One Prefect task per pipeline stage. Each calls the library and returns small values (paths, ids, URIs)
plus the seconds the library call took, so flows can tell real work from orchestration."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from latent.config import Config
from latent.data import ingest, preprocess
from latent.encode import encode
from latent.errors import LatentError
from latent.report import build_report
from latent.tracking import Tracking
from latent.train import train
from latent.workspace import Workspace


# Stage outputs are identified by content (dataset version, model version) inside the library, which skips
# work already done; Prefect's own result caching stays off so nothing large is persisted twice.
def _retry_unless_input_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transient faults (I/O, a busy store), never bad input: the same input fails the same way."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return not isinstance(exc, LatentError)


_COMMON: dict[str, Any] = {
    "cache_policy": NONE,
    "persist_result": False,
    "retry_condition_fn": _retry_unless_input_error,
}


def _timed(fn, *args, **kwargs) -> dict[str, Any]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return {**asdict(result), "work_seconds": time.perf_counter() - started}


@task(name="ingest", retries=2, retry_delay_seconds=[1, 5], **_COMMON)
def ingest_task(cfg: Config, workspace: Workspace) -> dict[str, Any]:
    return _timed(ingest, cfg.dataset, workspace)


@task(name="preprocess", retries=1, retry_delay_seconds=5, **_COMMON)
def preprocess_task(cfg: Config, workspace: Workspace, raw_path: str, fingerprint: str) -> dict[str, Any]:
    return _timed(preprocess, raw_path, fingerprint, cfg.preprocess, cfg.dask, workspace)


@task(name="train", **_COMMON)
def train_task(cfg: Config, workspace: Workspace, tracking: Tracking, dataset_path: str) -> dict[str, Any]:
    return _timed(train, dataset_path, cfg.model, cfg.train, workspace, tracking, cfg.tracking.registered_model)


@task(name="encode", retries=1, retry_delay_seconds=5, **_COMMON)
def encode_task(
    cfg: Config,
    workspace: Workspace,
    tracking: Tracking,
    dataset_path: str,
    model_uri: str,
    model_version: str,
    source_run_id: str | None,
) -> dict[str, Any]:
    return _timed(
        encode,
        dataset_path,
        model_uri,
        model_version,
        cfg.encode,
        workspace,
        tracking,
        source_run_id,
        dask_cfg=cfg.dask,
    )


@task(name="report", **_COMMON)
def report_task(
    cfg: Config, workspace: Workspace, tracking: Tracking, table_path: str, dataset_path: str, model_uri: str
) -> dict[str, Any]:
    return _timed(build_report, table_path, dataset_path, model_uri, cfg.report, workspace, tracking)
