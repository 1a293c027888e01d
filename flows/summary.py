"""Each flow run's summary as a Prefect Markdown artifact (key `latent-run-<dataset>`, so the Artifacts page keeps
one history per dataset): what each stage did, rows added, drift, retraining, the MLflow run and the report."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact

from latent.run_summary import artifact_key, run_summary_markdown


def publish_run_summary(result: Any, dataset: str, model: str) -> str:
    """Publish the summary of a pipeline flow's result on the current flow run; returns its Markdown."""
    markdown = run_summary_markdown(result, dataset, model)
    create_markdown_artifact(
        markdown=markdown, key=artifact_key(dataset), description=f"latent pipeline run: {dataset} · {model}"
    )
    return markdown
