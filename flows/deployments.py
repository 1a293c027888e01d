"""Deployments for `latent serve`, built from the one deployment spec (prefect.yaml's `deployments:`) with the same
names, schedules, parameters, concurrency limits and tags that `prefect deploy --all` registers from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latent.flows.pipeline import pipeline_flow
from latent.flows.transfer import transfer_flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron

from latent.deployment_spec import PIPELINE_ENTRYPOINT, load_deployment_spec


def build_deployments(spec_path: str | Path) -> list[Any]:
    """One Prefect deployment per entry of the spec; its parameters name the config file and overrides, which the
    flow reads when each run starts."""
    deployments = []
    for spec in load_deployment_spec(spec_path).deployments:
        flow = pipeline_flow if spec.entrypoint == PIPELINE_ENTRYPOINT else transfer_flow
        deployments.append(
            flow.to_deployment(
                name=spec.name,
                schedules=[Cron(s.cron, timezone=s.timezone, active=s.active) for s in spec.schedules],
                parameters=spec.flow_parameters(),
                concurrency_limit=ConcurrencyLimitConfig(
                    limit=spec.concurrency_limit.limit,
                    collision_strategy=ConcurrencyLimitStrategy(spec.concurrency_limit.collision_strategy),
                ),
                description=spec.description,
                tags=spec.tags,
                paused=spec.paused,
                version=spec.version,
            )
        )
    return deployments


def serve(spec_path: str | Path) -> None:
    """Register the deployments and run their scheduled flow runs in this process until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(spec_path), print_starting_message=True)
