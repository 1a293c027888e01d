"""The one deployment spec: the `deployments:` section of `prefect.yaml`, which `prefect deploy --all` registers for
work-pool workers and `latent serve` registers and runs in its own process. Both pass the deployment's
`config_file` and `overrides` as parameters, so the pipeline config is read when each run starts.

Only the keys both ways mean the same are accepted (a typo is an error that names it); the work-pool keys
(`work_pool`, `pull`, `build`, `push`, `version`) are for `prefect deploy` and `latent serve` ignores them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from latent.config import StrictModel, load_config
from latent.config_files import one_line
from latent.errors import ConfigError

DEFAULT_SPEC = Path("prefect.yaml")
PIPELINE_ENTRYPOINT = "latent.flows.pipeline:pipeline_flow"
TRANSFER_ENTRYPOINT = "latent.flows.transfer:transfer_flow"
FLOW_NAMES = {PIPELINE_ENTRYPOINT: "latent-pipeline", TRANSFER_ENTRYPOINT: "latent-transfer"}
Stage = Literal["ingest", "preprocess", "train", "encode", "report"]


class CronSchedule(StrictModel):
    cron: str  # 5 fields, e.g. "0 2 * * *"
    timezone: str = "UTC"  # an IANA time zone
    active: bool = True  # false: registered but paused

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, cron: str) -> str:
        if len(cron.split()) != 5:
            raise ValueError(f"expected a 5-field cron expression like '0 2 * * *', got {cron!r}")
        return cron

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, tz: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz!r}") from None
        return tz


class ConcurrencyLimit(StrictModel):
    limit: int = Field(ge=1)  # flow runs of this deployment that may run at once
    # what happens to a run that starts while `limit` runs are running: ENQUEUE waits for a free slot, CANCEL_NEW
    # cancels it
    collision_strategy: Literal["ENQUEUE", "CANCEL_NEW"] = "ENQUEUE"


class DeploymentParameters(StrictModel):
    config_file: str | None = None  # a config file or preset name, read when each run starts; None: the defaults
    overrides: list[str] = Field(default_factory=list)  # `--set` overrides applied to it
    stages: list[Stage] | None = Field(default=None, min_length=1)  # pipeline only; None: all five
    force: bool = False  # recompute even unchanged stages
    resume: Literal["auto", "require", "never"] | None = None  # pipeline only: resume an interrupted training


class DeploymentSpec(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    entrypoint: Literal["latent.flows.pipeline:pipeline_flow", "latent.flows.transfer:transfer_flow"]
    description: str | None = None
    parameters: DeploymentParameters = Field(default_factory=DeploymentParameters)
    schedules: list[CronSchedule] = Field(min_length=1)
    concurrency_limit: ConcurrencyLimit  # required: a slow run and the next one must never overlap
    tags: list[str] = Field(default_factory=list)
    paused: bool = False  # registered with its schedules off
    # for `prefect deploy` and its workers only; `latent serve` runs the flows in its own process
    work_pool: dict[str, Any] | None = None
    version: str | None = None
    pull: list[Any] | None = None
    build: list[Any] | None = None
    push: list[Any] | None = None

    @model_validator(mode="after")
    def _pipeline_only_parameters(self) -> DeploymentSpec:
        if self.entrypoint == TRANSFER_ENTRYPOINT:
            extra = [k for k in ("stages", "resume") if k in self.parameters.model_fields_set]
            if extra:
                raise ValueError(f"parameters {', '.join(extra)} are for the pipeline flow only")
        return self

    @property
    def flow_name(self) -> str:
        return FLOW_NAMES[self.entrypoint]

    def flow_parameters(self) -> dict[str, Any]:
        """The parameters exactly as the spec writes them (what `prefect deploy` registers too)."""
        return self.parameters.model_dump(mode="json", exclude_unset=True)


class DeploymentsFile(BaseModel):
    # prefect.yaml's other top-level keys (name, prefect-version, pull, build, push) are `prefect deploy`'s
    model_config = ConfigDict(extra="ignore", frozen=True)
    deployments: list[DeploymentSpec] = Field(min_length=1)


def load_deployment_spec(path: str | Path, check_configs: bool = True) -> DeploymentsFile:
    """Read and validate a deployment spec (prefect.yaml's format); with check_configs, each deployment's config
    file and overrides are validated too, so a broken one is refused now rather than at 02:00."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{path}: deployment spec not found (a prefect.yaml with a `deployments:` section)")
    try:
        tree = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({one_line(exc)})") from None
    _refuse_old_format(path, tree)
    try:
        spec = DeploymentsFile.model_validate(tree)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: {key}: {err['msg'].removeprefix('Value error, ')}") from None
    names = [d.name for d in spec.deployments]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: deployment names must be unique, got {names}")
    if check_configs:
        for d in spec.deployments:
            load_config(d.parameters.config_file, d.parameters.overrides)
    return spec


def _refuse_old_format(path: str | Path, tree: Any) -> None:
    """The schedules file `latent serve` read before (`cron`, `config`, `set`, `flow` on each entry) says how to
    write it now, rather than which key is missing."""
    entries = tree.get("deployments") if isinstance(tree, dict) else None
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        old = [k for k in ("cron", "config", "set", "flow") if isinstance(entry, dict) and k in entry]
        if old:
            raise ConfigError(
                f"{path}: deployments.{i}: {', '.join(old)} belong to the old schedules format; write "
                "`entrypoint: latent.flows.pipeline:pipeline_flow`, `schedules: [{cron: ..., timezone: ...}]`, "
                "`parameters: {config_file: ..., overrides: [...]}` and `concurrency_limit: {limit: 1}` "
                "(docs: Schedules, servers and clusters)"
            )
