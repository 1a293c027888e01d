"""The pipeline flow: ingest -> preprocess -> train -> encode -> report, or any contiguous part of it.

One MLflow parent run per flow run (tagged with the Prefect flow-run id), one nested run per tracked stage.
Stages hand each other paths and URIs only; a stage run alone finds its inputs through `latent.lineage`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

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
from latent.errors import ConfigError
from latent.tracking import (
    log_quarantine,
    mark_orphaned_runs,
    parent_run,
    set_run_tags,
    setup_tracking,
    source_commit,
    tag,
)
from latent.workspace import Workspace, sweep_workspace

STAGES = ("ingest", "preprocess", "train", "encode", "report")


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
    config: dict[str, Any] | None = None,
    stages: list[str] | None = None,
    model_uri: str | None = None,
    table_path: str | None = None,
    force: bool = False,
    config_file: str | None = None,
    overrides: list[str] | None = None,
    resume: str = "auto",
) -> dict[str, Any]:
    """Run the given stages (default: all) for a resolved config; returns paths, URIs and timings.

    The config is either given resolved (`config`, as the CLI and `latent serve` do) or read when the run starts
    from `config_file` and `overrides` (as `prefect deploy` deployments do; neither: the built-in defaults).
    A stage whose inputs are unchanged reuses its earlier output; force recomputes every stage that runs.
    resume: "auto" continues an interrupted training from its last checkpoint; "require" fails if there is none.
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
    results: dict[str, dict[str, Any]] = {}
    durations: dict[str, float] = {}
    params = _flatten(cfg.model_dump(mode="json"))
    with parent_run(base, name, run_tags, params, cfg.to_yaml(), nested_tags) as run:
        parent, tracking = run.run_id, run.tracking

        def run_stage(stage: str, fn, *args, key: str | None = None, **kwargs) -> dict[str, Any]:
            t0 = time.perf_counter()
            out = configured(fn, cfg)(*args, force=force, **kwargs)
            key = key or stage
            durations[key] = time.perf_counter() - t0
            run.metrics[f"duration_{key}_s"] = durations[key]  # logged on failure too
            results[key] = out
            return out

        dataset_path: str | None = None
        raw_path, fingerprint = lineage.raw_table_for(cfg, workspace)
        if "ingest" in wanted:
            out = run_stage("ingest", ingest_task, cfg, workspace)
            raw_path, fingerprint = out["raw_path"], out["fingerprint"]

        if "preprocess" in wanted:
            out = run_stage("preprocess", preprocess_task, cfg, workspace, raw_path, fingerprint)
            dataset_path = out["dataset_path"]
            if out.get("images"):  # the size, mode and transform an image folder was brought to, for reviewers
                set_run_tags(base, parent, {tag("images"): out["images"]})
            if out.get("skipped"):  # image folders with on_bad_file: skip: the quarantine goes to the reviewers
                log_quarantine(base, parent, Path(dataset_path), out["skipped"])
        elif set(wanted) & {"train", "encode", "report"}:
            dataset_path = lineage.dataset_for(cfg, workspace)

        source_run_id = None
        # only the data grew (the dataset is a snapshot made from the published table's): append the new rows
        # with the table's model, measure their drift, then let the retrain policy decide
        growth = None
        if {"train", "encode"} <= set(wanted) and not force:
            growth = lineage.growth_of(cfg, workspace, dataset_path)
        retrain = True
        if growth is not None and growth.up_to_date:  # the published table holds this snapshot: reuse it
            model_uri, model_version, source_run_id = growth.model_uri, growth.model_version, growth.train_run_id
            table_path, retrain = growth.previous_table, False
            results["encode"] = {"table_path": table_path, "reused": True, "rows_added": 0, "rows_deleted": 0}
            results["encode"].update(drift=None, retrained=False, work_seconds=0.0)
            results["encode"]["published_path"] = lineage.publish_series(cfg, workspace, table_path)
            durations["encode"] = 0.0
        elif growth is not None:
            appended = run_stage("encode", append_task, cfg, workspace, tracking, dataset_path, growth, key="append")
            if appended["drift"] is not None:
                set_run_tags(base, parent, {tag("drift"): str(appended["drift"]["drifted"]).lower()})
            retrain = should_retrain(cfg.train.retrain, appended["drift"])
            if not retrain:
                model_uri, model_version, source_run_id = growth.model_uri, growth.model_version, growth.train_run_id
                table_path = appended["table_path"]
                results["encode"] = {**results.pop("append"), "retrained": False}
                durations["encode"] = durations.pop("append")
        if "train" in wanted and retrain:
            out = run_stage("train", train_task, cfg, workspace, tracking, dataset_path, resume=resume)
            model_uri, model_version, source_run_id = out["model_uri"], out["model_version"], out["run_id"]
        elif "encode" in wanted and retrain:
            if model_uri is None:
                model_uri, model_version, source_run_id = lineage.model_for(tracking, dataset_path)
            else:
                model_version = lineage.model_version_of(tracking, model_uri)

        if "encode" in wanted and retrain:
            out = run_stage(
                "encode",
                encode_task,
                cfg,
                workspace,
                tracking,
                dataset_path,
                model_uri,
                model_version,
                source_run_id,
                publish=True,
            )
            table_path = out["table_path"]
            out["retrained"] = "train" in results and not results["train"]["reused"]
            if growth is not None:  # the facts of the growth, measured by the append
                out.update({k: results["append"][k] for k in ("rows_added", "rows_deleted", "drift")})
        elif "report" in wanted and table_path is None:
            table_path, model_uri = lineage.table_for(tracking, dataset_path)

        if "report" in wanted:
            if model_uri is None:
                from latent.tables import read_table_info

                model_uri = read_table_info(table_path).info["model"]["uri"]
            run_stage("report", report_task, cfg, workspace, tracking, table_path, dataset_path, model_uri)

        total = time.perf_counter() - started
        work = {k: float(v.get("work_seconds", 0.0)) for k, v in results.items()}
        run.metrics.update({f"work_{k}_s": v for k, v in work.items()})
        run.metrics["duration_total_s"] = total
        run.end_tags[tag("reused_stages")] = ",".join(k for k, v in results.items() if v.get("reused"))
        if dataset_path:
            run.end_tags[tag("dataset_version")] = Path(dataset_path).name
    return {
        "pipeline_run_id": parent,
        "flow_run_id": flow_run_id,
        "tracking_uri": base.uri,
        "experiment_id": base.experiment_id,
        "workspace": str(workspace.root),
        "stages": results,
        "durations": durations,
        "work_seconds": work,
        "total_seconds": total,
    }
