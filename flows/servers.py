"""Which Prefect server a command's flows talk to. Prefect reads PREFECT_API_URL when it is imported, so the choice
is made here, before anything imports Prefect (this module does not)."""

from __future__ import annotations

import os
from pathlib import Path

from latent.errors import LatentError

DEFAULT_SPEC = Path("prefect.yaml")  # the one deployment spec, as `prefect deploy` finds it


def use_prefect_server(api_url: str | None) -> None:
    """orchestration.prefect_api_url (else PREFECT_API_URL, else Prefect's temporary server) for this process."""
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url


def spec_file(spec: Path | None) -> Path:
    """The deployment spec `latent serve` runs: the given file, else prefect.yaml in the working directory (where
    `prefect deploy` finds it too)."""
    return spec if spec is not None else DEFAULT_SPEC


def spec_prefect_server(spec: Path) -> str | None:
    """The one Prefect server the deployments of a spec name in their configs (None: none names one); a
    LatentError when they name different servers, since one process serves them all."""
    from latent.config import load_config
    from latent.deployment_spec import load_deployment_spec

    deployments = load_deployment_spec(spec, check_configs=False).deployments
    api_urls = {
        load_config(d.parameters.config_file, d.parameters.overrides).orchestration.prefect_api_url for d in deployments
    } - {None}
    if len(api_urls) > 1:
        raise LatentError(f"{spec}: deployments name different Prefect servers ({sorted(api_urls)})")
    return next(iter(api_urls), None)
