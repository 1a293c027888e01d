"""The pipeline flow: ingest -> preprocess -> train -> encode -> report, or any contiguous part of it.

One MLflow parent run per flow run (tagged with the Prefect flow-run id), one nested run per tracked stage.
Stages hand each other paths and URIs only; a stage run alone finds its inputs through `latent.lineage`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from latent.flows.summary import publish_run_summary
from latent.tasks.stages import (
    append_task,
    configured,
    encode_task,
    ingest_task,
    preprocess_task,
    report_task,
    train_task,
)
from prefect import flow
from prefect.runtime import flow_run

import latent
from latent import lineage
from latent.analysis.drift import should_retrain
from latent.config import Config, load_config
from latent.data.ingest import IngestResult
from latent.data.preprocess import PreprocessResult
from latent.encode import EncodeResult, reused_table_result
from latent.errors import ConfigError
from latent.report import ReportResult
from latent.tracking import (
    log_quarantine,
    mark_orphaned_runs,
    parent_run,
    set_run_tags,
    setup_tracking,
    source_commit,
    tag,
)
from latent.train import TrainResult
from latent.workspace import Workspace, sweep_workspace

STAGES = ("ingest", "preprocess", "train", "encode", "report")
Stage = Literal["ingest", "preprocess", "train", "encode", "report"]
StageResult = IngestResult | PreprocessResult | TrainResult | EncodeResult | ReportResult


@dataclass(frozen=True)
class PipelineResult:
    """What one pipeline flow run did: its MLflow parent run, each stage's result (the library's dataclass, in the
    order the stages ran), and where the time went (seconds per stage: in the flow, and in the library call)."""

    pipeline_run_id: str
    flow_run_id: str
    tracking_uri: str
    experiment_id: str
    workspace: str
    stages: dict[str, StageResult]
    durations: dict[str, float]
    work_seconds: dict[str, float]
    total_seconds: float

    @property
    def ingest(self) -> IngestResult | None:
        return self.stages.get("ingest")  # type: ignore[return-value]

    @property
    def preprocess(self) -> PreprocessResult | None:
        return self.stages.get("preprocess")  # type: ignore[return-value]

    @property
    def train(self) -> TrainResult | None:
        return self.stages.get("train")  # type: ignore[return-value]

    @property
    def encode(self) -> EncodeResult | None:
        return self.stages.get("encode")  # type: ignore[return-value]

    @property
    def report(self) -> ReportResult | None:
        return self.stages.get("report")  # type: ignore[return-value]


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


@flow(name="latent-pipeline", validate_parameters=False)
def pipeline_flow(
    config: Config | None = None,
    stages: list[Stage] | None = None,
    model_uri: str | None = None,
    table_path: str | None = None,
    force: bool = False,
    config_file: str | None = None,
    overrides: list[str] | None = None,
    resume: Literal["auto", "require", "never"] = "auto",
) -> PipelineResult:
    """Run the given stages (default: all) for a config; returns paths, URIs and timings. Each run publishes its
    summary as a Markdown artifact (`latent-run-<dataset>`).

    Args:
        config: A resolved config, as the command line passes it; deployments leave it empty.
        stages: The stages to run, in pipeline order; empty: all five.
        model_uri: The model to encode with when `train` does not run (e.g. models:/digits-vae_mlp@champion).
        table_path: The latent table to report on when `encode` does not run.
        force: Recompute every stage that runs, even if its inputs are unchanged.
        config_file: A config file or preset name, read when the run starts; empty: the built-in defaults.
        overrides: `--set` style overrides applied to it, e.g. train.epochs=50.
        resume: auto continues an interrupted training from its last checkpoint; require fails if there is none.
    """
    cfg = Config.model_validate(config) if config is not None else load_config(config_file, overrides or [])
    wanted = list(stages or STAGES)
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(unknown)}; expected some of: {', '.join(STAGES)}")
    started = time.perf_counter()
    workspace = Workspace.at(cfg.workspace)
    base = setup_tracking(cfg.tracking, workspace).naming(cfg.dataset.name, cfg.model.name)
    orphans = mark_orphaned_runs(base)  # runs a killed process left RUNNING; an interrupted training still resumes
    swept = sweep_workspace(workspace)  # what killed writers left half-written (readers never saw it)
    flow_run_id = str(flow_run.get_id() or "")
    run_tags = {
        tag("kind"): "pipeline",
        tag("stages"): ",".join(wanted),
        tag("prefect_flow_run_id"): flow_run_id,
        tag("prefect_flow_run_name"): str(flow_run.get_name() or ""),
        tag("config_hash"): cfg.config_hash(),
        tag("package_version"): latent.__version__,
        tag("workspace"): str(workspace.root),
        tag("force"): str(force).lower(),
    }
    commit = source_commit()
    if commit:
        run_tags[tag("git_commit")] = commit
    if orphans:
        run_tags[tag("marked_killed_runs")] = ",".join(orphans)[:4000]
    if swept:
        run_tags[tag("swept_temporaries")] = str(len(swept))
    name = f"{cfg.dataset.name} · {cfg.model.name} · " + ("pipeline" if wanted == list(STAGES) else "+".join(wanted))
    nested_tags = {
        tag("prefect_flow_run_id"): flow_run_id,
        tag("config_hash"): run_tags[tag("config_hash")],
        tag("package_version"): latent.__version__,
        **({tag("git_commit"): commit} if commit else {}),
    }
    results: dict[str, StageResult] = {}
    durations: dict[str, float] = {}
    work: dict[str, float] = {}
    params = _flatten(cfg.model_dump(mode="json"))
    with parent_run(base, name, run_tags, params, cfg.to_yaml(), nested_tags) as run:
        parent, tracking = run.run_id, run.tracking

        def run_stage(stage: str, fn, *args, key: str | None = None, **kwargs) -> Any:
            t0 = time.perf_counter()
            timed = configured(fn, cfg)(*args, force=force, **kwargs)
            key = key or stage
            durations[key] = time.perf_counter() - t0
            run.metrics[f"duration_{key}_s"] = durations[key]  # logged on failure too
            results[key], work[key] = timed.result, timed.work_seconds
            return timed.result

        dataset_path: str | None = None
        raw_path, fingerprint = lineage.raw_table_for(cfg, workspace)
        if "ingest" in wanted:
            ingested: IngestResult = run_stage("ingest", ingest_task, cfg, workspace)
            raw_path, fingerprint = ingested.raw_path, ingested.fingerprint

        if "preprocess" in wanted:
            prepared: PreprocessResult = run_stage("preprocess", preprocess_task, cfg, workspace, raw_path, fingerprint)
            dataset_path = prepared.dataset_path
            if prepared.images:  # the size, mode and transform an image folder was brought to, for reviewers
                set_run_tags(base, parent, {tag("images"): prepared.images})
            if prepared.skipped:  # image folders with on_bad_file: skip: the quarantine goes to the reviewers
                log_quarantine(base, parent, Path(dataset_path), prepared.skipped)
        elif set(wanted) & {"train", "encode", "report"}:
            dataset_path = lineage.dataset_for(cfg, workspace)

        source_run_id = None
        # an encoding with a model the user named (--model-uri) is filed in the catalog, but the series' published
        # path keeps showing the pipeline's own model: the next scheduled run appends with that one
        explicit_model = model_uri is not None
        # only the data grew (the dataset is a snapshot made from the published table's): append the new rows
        # with the table's model, measure their drift, then let the retrain policy decide
        growth = None
        if {"train", "encode"} <= set(wanted) and not force:
            growth = lineage.growth_of(cfg, workspace, dataset_path)
        retrain = True
        appended: EncodeResult | None = None
        if growth is not None and growth.up_to_date:  # the published table holds this snapshot: reuse it
            model_uri, model_version, source_run_id = growth.model_uri, growth.model_version, growth.train_run_id
            table_path, retrain = growth.previous_table, False
            results["encode"] = reused_table_result(table_path, lineage.publish_series(cfg, workspace, table_path))
            durations["encode"], work["encode"] = 0.0, 0.0
        elif growth is not None:
            appended = run_stage("encode", append_task, cfg, workspace, tracking, dataset_path, growth, key="append")
            if appended.drift is not None:
                set_run_tags(base, parent, {tag("drift"): str(appended.drift["drifted"]).lower()})
            retrain = should_retrain(cfg.train.retrain, appended.drift)
            if not retrain:
                model_uri, model_version, source_run_id = growth.model_uri, growth.model_version, growth.train_run_id
                table_path = appended.table_path
                results["encode"] = replace(results.pop("append"), retrained=False)
                durations["encode"], work["encode"] = durations.pop("append"), work.pop("append")
        if "train" in wanted and retrain:
            trained: TrainResult = run_stage("train", train_task, cfg, workspace, tracking, dataset_path, resume=resume)
            model_uri, model_version, source_run_id = trained.model_uri, trained.model_version, trained.run_id
        elif "encode" in wanted and retrain:
            if model_uri is None:
                model_uri, model_version, source_run_id = lineage.model_for(tracking, dataset_path)
            else:
                model_version = lineage.model_version_of(tracking, model_uri)

        if "encode" in wanted and retrain:
            encoded: EncodeResult = run_stage(
                "encode",
                encode_task,
                cfg,
                workspace,
                tracking,
                dataset_path,
                model_uri,
                model_version,
                source_run_id,
                publish=not explicit_model,
            )
            facts: dict[str, Any] = {"retrained": "train" in results and not results["train"].reused}
            if appended is not None:  # the facts of the growth, measured by the append
                facts.update(rows_added=appended.rows_added, rows_deleted=appended.rows_deleted, drift=appended.drift)
            results["encode"] = encoded = replace(encoded, **facts)
            table_path = encoded.table_path
        elif "report" in wanted and table_path is None:
            table_path, model_uri = lineage.table_for(tracking, dataset_path)

        if "report" in wanted:
            if model_uri is None:
                from latent.tables import read_table_info

                model_uri = read_table_info(table_path).info["model"]["uri"]
            run_stage("report", report_task, cfg, workspace, tracking, table_path, dataset_path, model_uri)

        total = time.perf_counter() - started
        run.metrics.update({f"work_{k}_s": v for k, v in work.items()})
        run.metrics["duration_total_s"] = total
        run.end_tags[tag("reused_stages")] = ",".join(k for k, v in results.items() if v.reused)
        if dataset_path:
            run.end_tags[tag("dataset_version")] = Path(dataset_path).name
    result = PipelineResult(
        pipeline_run_id=parent,
        flow_run_id=flow_run_id,
        tracking_uri=base.uri,
        experiment_id=base.experiment_id,
        workspace=str(workspace.root),
        stages=results,
        durations=durations,
        work_seconds=work,
        total_seconds=total,
    )
    publish_run_summary(result, cfg.dataset.name, cfg.model.name)
    return result
