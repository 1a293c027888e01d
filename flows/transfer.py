"""The transfer flow: frozen vs adapted vs scratch latent spaces on a target domain, in one MLflow parent run."""

from __future__ import annotations

import time
from dataclasses import dataclass

from latent.tasks.stages import configured, encode_task
from latent.tasks.transfer import adapt_task, evaluate_task, source_task, target_task
from prefect import flow
from prefect.runtime import flow_run

import latent
from latent.config import Config, load_config
from latent.tracking import parent_run, setup_tracking, source_commit, tag
from latent.transfer import TransferSource
from latent.workspace import Workspace


@dataclass(frozen=True)
class TransferFlowResult:
    """What one transfer flow run did: its MLflow parent run, the source, the target dataset, the three models
    (frozen, adapted, scratch) and their latent tables on the target, and the evaluation (`TransferResult`'s
    fields: the report, its metrics and the probe accuracy per approach and label budget)."""

    transfer_run_id: str
    flow_run_id: str
    tracking_uri: str
    experiment_id: str
    source: TransferSource
    target_dataset: str
    models: dict[str, str]
    tables: dict[str, str]
    report_dir: str
    html_path: str
    metrics: dict[str, float]
    accuracy: dict[str, dict[str, float]]


@flow(name="latent-transfer", validate_parameters=False)
def transfer_flow(
    config: Config | None = None,
    force: bool = False,
    config_file: str | None = None,
    overrides: list[str] | None = None,
) -> TransferFlowResult:
    """Frozen, adapted and scratch latent spaces on the target domain; returns the tables, metrics and report.

    Args:
        config: A resolved config, as the command line passes it; deployments leave it empty.
        force: Retrain the adapted and scratch models even if their inputs are unchanged.
        config_file: A config file or preset name, read when the run starts; empty: the built-in defaults.
        overrides: `--set` style overrides applied to it, e.g. transfer.adapt_epochs=5.
    """
    cfg = Config.model_validate(config) if config is not None else load_config(config_file, overrides or [])
    started = time.perf_counter()
    workspace = Workspace.at(cfg.workspace)
    base = setup_tracking(cfg.tracking, workspace).naming(cfg.dataset.name, cfg.model.name)
    flow_run_id = str(flow_run.get_id() or "")
    commit = source_commit()
    run_tags = {
        tag("kind"): "transfer",
        tag("prefect_flow_run_id"): flow_run_id,
        tag("config_hash"): cfg.config_hash(),
        tag("package_version"): latent.__version__,
        **({tag("git_commit"): commit} if commit else {}),
    }
    name = f"{cfg.dataset.name} · {cfg.model.name} · transfer"
    params = {f"transfer.{k}": v for k, v in cfg.transfer.model_dump(mode="json").items()}
    nested_tags = {k: v for k, v in run_tags.items() if k != tag("kind")}
    with parent_run(base, name, run_tags, params, cfg.to_yaml(), nested_tags) as run:
        parent, tracking = run.run_id, run.tracking
        source = source_task(cfg, workspace, tracking)
        target = target_task(cfg, workspace, tracking, source)
        fit = configured(adapt_task, cfg, "train")
        adapted = fit(cfg, workspace, tracking, target, source.model_uri, "adapt", force).result
        scratch = fit(cfg, workspace, tracking, target, None, "scratch", force).result
        encode = configured(encode_task, cfg)
        models = {
            "frozen": (source.model_uri, source.model_version, source.run_id),
            "adapted": (adapted.model_uri, adapted.model_version, adapted.run_id),
            "scratch": (scratch.model_uri, scratch.model_version, scratch.run_id),
        }
        tables = {
            name: encode(cfg, workspace, tracking, target.dataset_path, uri, version, run_id).result.table_path
            for name, (uri, version, run_id) in models.items()
        }
        source_tables = {
            name: encode(cfg, workspace, tracking, source.dataset_path, *models[name]).result.table_path
            for name in ("frozen", "adapted")
        }
        out_dir = workspace.report_dir(parent) / "transfer"
        result = evaluate_task(cfg, tables, source_tables, target.dataset_path, str(out_dir))
        import mlflow

        client = mlflow.MlflowClient(base.uri)
        client.log_artifacts(parent, result.report_dir, "transfer")
        run.metrics.update({**result.metrics, "duration_total_s": time.perf_counter() - started})
        run.end_tags[tag("transfer_report")] = result.html_path
    return TransferFlowResult(
        transfer_run_id=parent,
        flow_run_id=flow_run_id,
        tracking_uri=base.uri,
        experiment_id=base.experiment_id,
        source=source,
        target_dataset=target.dataset_path,
        models={k: v[0] for k, v in models.items()},
        tables=tables,
        report_dir=result.report_dir,
        html_path=result.html_path,
        metrics=result.metrics,
        accuracy=result.accuracy,
    )
