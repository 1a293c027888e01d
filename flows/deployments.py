"""Deployments: the pipeline and transfer flows on the cron schedules of conf/schedules.yaml, for `latent serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latent.flows.pipeline import pipeline_flow
from latent.flows.transfer import transfer_flow
from prefect.schedules import Cron

from latent.config import load_config, load_schedules


def build_deployments(schedules_path: str | Path) -> list[Any]:
    """One Prefect deployment per entry, with its schedule and its resolved config as parameters."""
    deployments = []
    for spec in load_schedules(schedules_path).deployments:
        cfg = load_config(spec.config, spec.set)
        parameters: dict[str, Any] = {"config": cfg.model_dump(mode="json"), "force": spec.force}
        if spec.flow == "pipeline":
            flow, parameters["stages"] = pipeline_flow, spec.stages
        else:
            flow = transfer_flow
        deployments.append(
            flow.to_deployment(
                name=spec.name,
                schedule=Cron(spec.cron, timezone=spec.timezone),
                parameters=parameters,
                paused=spec.paused,
                description=spec.description,
                tags=["latent"],
            )
        )
    return deployments


def serve(schedules_path: str | Path) -> None:
    """Register the deployments and run their scheduled flow runs in this process until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(schedules_path), print_starting_message=True)
