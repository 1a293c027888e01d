"""Which Prefect server a command's flows talk to. Prefect reads PREFECT_API_URL when it is imported, so the choice
is made here, before anything imports Prefect (this module does not)."""

from __future__ import annotations

import os
from pathlib import Path

from latent.errors import LatentError

SHIPPED_SCHEDULES = Path("schedules")  # the preset name load_schedules resolves to the shipped file
LOCAL_SCHEDULES = Path("conf/schedules.yaml")


def use_prefect_server(api_url: str | None) -> None:
    """orchestration.prefect_api_url (else PREFECT_API_URL, else Prefect's temporary server) for this process."""
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url


def schedules_file(schedules: Path | None) -> Path:
    """The schedules `latent serve` runs: the given file or preset, else conf/schedules.yaml if present, else the
    shipped one."""
    if schedules is not None:
        return schedules
    return LOCAL_SCHEDULES if LOCAL_SCHEDULES.is_file() else SHIPPED_SCHEDULES


def schedules_prefect_server(schedules: Path) -> str | None:
    """The one Prefect server the deployments of a schedules file name (None: none names one); a LatentError when
    they name different servers, since one process serves them all."""
    from latent.config import load_config, load_schedules

    specs = load_schedules(schedules)
    api_urls = {load_config(d.config, d.set).orchestration.prefect_api_url for d in specs.deployments} - {None}
    if len(api_urls) > 1:
        raise LatentError(f"{schedules}: deployments name different Prefect servers ({sorted(api_urls)})")
    return next(iter(api_urls), None)
