"""One Prefect task per pipeline stage. Each calls the library and returns its result dataclass (paths, ids,
URIs: small values) inside a `Timed`, with the seconds the library call took, so flows can tell real work from
orchestration.

Retries (I/O-bound stages) and timeouts (all stages) come from the config's `orchestration` section: see
`configured`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from prefect import Task, task
from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from latent.config import Config
from latent.data import ingest, preprocess
from latent.data.ingest import IngestResult
from latent.data.preprocess import PreprocessResult
from latent.encode import EncodeResult, append, encode
from latent.errors import LatentError
from latent.lineage import Growth, publish_series
from latent.report import ReportResult, build_report
from latent.tracking import Tracking
from latent.train import TrainResult, train
from latent.workspace import Workspace

IO_BOUND = {"ingest", "preprocess", "encode"}


def _retry_unless_input_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transient faults (I/O, a busy store), never bad input: the same input fails the same way."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return not isinstance(exc, LatentError)


# Stage outputs are identified by content (dataset version, model version, config keys) and reused by the
# library itself, with the MLflow store as the record, so any machine sees the same cache. Prefect's own result
# caching stays off: nothing large is persisted twice.
_COMMON: dict[str, Any] = {
    "cache_policy": NONE,
    "persist_result": False,
    "retry_condition_fn": _retry_unless_input_error,
}


def configured(stage_task: Task, cfg: Config, stage: str | None = None) -> Task:
    """The task with the config's timeout for its stage (its name unless given), and retries with exponential
    backoff if the stage is I/O-bound."""
    orchestration = cfg.orchestration
    stage = stage or stage_task.name
    options: dict[str, Any] = {"timeout_seconds": getattr(orchestration.timeouts_s, stage)}
    if stage in IO_BOUND and orchestration.retries:
        options.update(
            retries=orchestration.retries,
            retry_delay_seconds=exponential_backoff(orchestration.retry_backoff_s),
            retry_jitter_factor=0.2,
        )
    return stage_task.with_options(**options)


R = TypeVar("R")


@dataclass(frozen=True)
class Timed(Generic[R]):
    """A stage's result (the library's dataclass) and the seconds the library call took inside the task."""

    result: R
    work_seconds: float


def timed(fn: Callable[..., R], *args: Any, **kwargs: Any) -> Timed[R]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return Timed(result, time.perf_counter() - started)


@task(name="ingest", **_COMMON)
def ingest_task(cfg: Config, workspace: Workspace, force: bool = False) -> Timed[IngestResult]:
    return timed(ingest, cfg.dataset, workspace, force=force, shard_rows=cfg.preprocess.shard_rows)


@task(name="preprocess", **_COMMON)
def preprocess_task(
    cfg: Config, workspace: Workspace, raw_path: str, fingerprint: str, force: bool = False
) -> Timed[PreprocessResult]:
    return timed(preprocess, raw_path, fingerprint, cfg.preprocess, cfg.dask, workspace, force=force)


@task(name="train", **_COMMON)
def train_task(
    cfg: Config, workspace: Workspace, tracking: Tracking, dataset_path: str, force: bool = False, resume: str = "auto"
) -> Timed[TrainResult]:
    return timed(
        train,
        dataset_path,
        cfg.model,
        cfg.train,
        workspace,
        tracking,
        cfg.tracking.registered_model,
        reuse=not force,
        resume="never" if force else resume,
        champion_alias=cfg.tracking.champion_alias,
    )


@task(name="encode", **_COMMON)
def encode_task(
    cfg: Config,
    workspace: Workspace,
    tracking: Tracking,
    dataset_path: str,
    model_uri: str,
    model_version: str,
    source_run_id: str | None,
    force: bool = False,
    publish: bool = False,
) -> Timed[EncodeResult]:
    """publish: the table becomes the series' published path (the pipeline's encodings, not the transfer study's)."""
    out = timed(
        encode,
        dataset_path,
        model_uri,
        model_version,
        cfg.encode,
        workspace,
        tracking,
        source_run_id,
        replace=force,
        dask_cfg=cfg.dask,
    )
    return _published(cfg, workspace, out) if publish else out


def _published(cfg: Config, workspace: Workspace, out: Timed[EncodeResult]) -> Timed[EncodeResult]:
    """The table becomes its series' published path (`tables/<dataset>-<model>/`)."""
    published = publish_series(cfg, workspace, out.result.table_path)
    return Timed(replace(out.result, published_path=published), out.work_seconds)


@task(name="encode", **_COMMON)
def append_task(
    cfg: Config,
    workspace: Workspace,
    tracking: Tracking,
    dataset_path: str,
    growth: Growth,
    force: bool = False,
) -> Timed[EncodeResult]:
    out = timed(
        append,
        dataset_path,
        growth.previous_table,
        growth.model_uri,
        growth.model_version,
        cfg.encode,
        cfg.train,
        workspace,
        tracking,
        growth.train_run_id,
    )
    return _published(cfg, workspace, out)


@task(name="report", **_COMMON)
def report_task(
    cfg: Config,
    workspace: Workspace,
    tracking: Tracking,
    table_path: str,
    dataset_path: str,
    model_uri: str,
    force: bool = False,
) -> Timed[ReportResult]:
    return timed(build_report, table_path, dataset_path, model_uri, cfg.report, workspace, tracking, reuse=not force)
