"""A pipeline run in a few lines of Markdown: what each stage did, the rows it added, drift and retraining, and
where the MLflow run and the report are. The flow publishes it as the run's Prefect artifact; building it needs no
Prefect, so it is tested on its own.

A stage result may be a dict or an object with attributes (dataclasses); fields a stage does not report are
left out of the summary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

STAGE_ORDER = ("ingest", "preprocess", "train", "encode", "report")
# stages whose results may say what the run added or decided, searched in this order
_GROWTH_FIELDS_FROM = ("encode", "preprocess", "ingest", "train", "report")


def field(obj: Any, name: str, default: Any = None) -> Any:
    """obj[name] for a mapping, else obj.name; default when it has neither."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def artifact_key(dataset: str) -> str:
    """`latent-run-<dataset>`, in the characters Prefect allows in an artifact key (lowercase, digits, dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", dataset.lower()).strip("-") or "dataset"
    return f"latent-run-{slug}"


def mlflow_run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """A Markdown link to the run in the MLflow UI for an http(s) tracking server; otherwise the store, experiment
    and run spelled out (a local store is browsed with `latent ui`)."""
    if tracking_uri.startswith(("http://", "https://")):
        url = f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"[{run_id}]({url})"
    return f"`{run_id}` (experiment {experiment_id} in `{tracking_uri}`; browse it with `latent ui`)"


def _first(stages: Mapping[str, Any], name: str) -> Any:
    for stage in _GROWTH_FIELDS_FROM:
        value = field(stages.get(stage), name)
        if value is not None:
            return value
    return None


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def run_summary_markdown(result: Any, dataset: str, model: str) -> str:
    """The summary of a pipeline flow's result (a PipelineResult, or a mapping with its fields: stages, durations,
    tracking_uri, experiment_id, pipeline_run_id)."""
    stages: Mapping[str, Any] = field(result, "stages") or {}
    durations: Mapping[str, float] = field(result, "durations") or {}
    lines = [f"# latent run: {dataset} · {model}", ""]
    if stages:
        lines += ["| stage | outcome | seconds |", "|---|---|---:|"]
        for stage in [s for s in STAGE_ORDER if s in stages] + [s for s in stages if s not in STAGE_ORDER]:
            outcome = "reused" if field(stages[stage], "reused") else "ran"
            lines.append(f"| {stage} | {outcome} | {durations.get(stage, 0.0):.1f} |")
        lines.append("")
    else:
        lines += ["No stage ran.", ""]

    facts: list[str] = []
    encode = stages.get("encode")
    if encode is not None:
        rows, splits = field(encode, "rows"), field(encode, "rows_per_split") or {}
        split_text = ", ".join(f"{k} {_number(v)}" for k, v in splits.items())
        facts.append(
            f"**Latent table:** `{field(encode, 'table_path')}`"
            + (f", {_number(rows)} rows" if rows is not None else "")
            + (f" ({split_text})" if split_text else "")
        )
    added, deleted = _first(stages, "rows_added"), _first(stages, "rows_deleted")
    if added is not None or deleted is not None:
        facts.append(f"**Rows added:** {_number(added or 0)} · **rows deleted:** {_number(deleted or 0)}")
    drift = _first(stages, "drift")
    if drift is not None:
        parts = [
            f"{label} {_number(field(drift, key))}"
            for key, label in (("mmd2", "MMD²"), ("recon_ratio", "reconstruction error ratio"))
            if field(drift, key) is not None
        ]
        drifted = field(drift, "drifted")
        if drifted is not None:
            parts.append("**drifted**" if drifted else "no drift")
        facts.append("**Drift:** " + " · ".join(parts))
    retrained = _first(stages, "retrained")
    if retrained is not None:
        facts.append(f"**Retrained:** {'yes' if retrained else 'no'}")
    run_id = field(result, "pipeline_run_id")
    if run_id:
        link = mlflow_run_link(str(field(result, "tracking_uri", "")), str(field(result, "experiment_id", "")), run_id)
        facts.append(f"**MLflow run:** {link}")
    report = stages.get("report")
    if report is not None and field(report, "html_path"):
        facts.append(f"**Report:** `{field(report, 'html_path')}`")
    lines += [f"- {fact}" for fact in facts]
    return "\n".join(lines).rstrip() + "\n"
