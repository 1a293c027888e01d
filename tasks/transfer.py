"""Prefect tasks of the transfer flow: thin wrappers around `latent.transfer` and `latent.train`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from latent.tasks.stages import _COMMON, Timed, timed
from prefect import task

from latent.config import Config, ModelConfig
from latent.data.dataset import read_dataset_info
from latent.tracking import Tracking
from latent.train import TrainResult, train
from latent.transfer import (
    TransferResult,
    TransferSource,
    check_compatible,
    evaluate_transfer,
    make_shifted_dataset,
    resolve_source,
    source_model_config,
)
from latent.workspace import Workspace


@dataclass(frozen=True)
class TransferTarget:
    """The target dataset table, and the config that rebuilds the source model's architecture to train on it."""

    dataset_path: str
    model_config: ModelConfig


@task(name="transfer-source", **_COMMON)
def source_task(cfg: Config, workspace: Workspace, tracking: Tracking) -> TransferSource:
    source_model = cfg.transfer.source_model or f"{cfg.tracking.registered_model}@{cfg.tracking.champion_alias}"
    return resolve_source(source_model, tracking, workspace)


@task(name="transfer-target", **_COMMON)
def target_task(cfg: Config, workspace: Workspace, tracking: Tracking, source: TransferSource) -> TransferTarget:
    """The target dataset (given, or the shifted source), refused early if the source model cannot read it."""
    if cfg.transfer.target_dataset:
        target = read_dataset_info(cfg.transfer.target_dataset)
    else:
        target = make_shifted_dataset(source.dataset_path, cfg.transfer.shift, workspace)
    model, model_cfg = source_model_config(source.model_uri, tracking.uri)
    check_compatible(model.config.input_dim, source.model_uri, target, getattr(model.config, "input_shape", None))
    return TransferTarget(str(target.path), model_cfg)


@task(name="transfer-train", **_COMMON)
def adapt_task(
    cfg: Config,
    workspace: Workspace,
    tracking: Tracking,
    target: TransferTarget,
    init_model_uri: str | None,
    run_name: str,
    force: bool = False,
) -> Timed[TrainResult]:
    train_cfg = cfg.train.model_copy(update={"epochs": cfg.transfer.adapt_epochs, "early_stopping_patience": 0})
    return timed(
        train,
        target.dataset_path,
        target.model_config,
        train_cfg,
        workspace,
        tracking,
        registered_model=None,
        reuse=not force,
        resume="never" if force else "auto",
        champion_alias=None,
        init_model_uri=init_model_uri,
        freeze_encoder_layers=cfg.transfer.freeze_encoder_layers if init_model_uri else 0,
        run_name=run_name,
    )


@task(name="transfer-evaluate", **_COMMON)
def evaluate_task(
    cfg: Config, tables: dict[str, str], source_tables: dict[str, str], target_dataset: str, out_dir: str
) -> TransferResult:
    t = cfg.transfer
    return evaluate_transfer(
        tables, source_tables, target_dataset, t.label_budgets, t.probe_repeats, t.seed, Path(out_dir)
    )
