"""The one deployment spec (prefect.yaml): `prefect deploy --all` and `latent serve` register the same deployments
from it on one real Prefect server; a deployment's concurrency limit keeps a second run from starting while the
first runs; the flows' parameters are typed, so the Prefect UI shows a form."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from latent.deployment_spec import load_deployment_spec
from latent.errors import ConfigError
from tests.helpers import ROOT, clean_env, latent_command

BIN = Path(sys.executable).parent
SPEC = ROOT / "prefect.yaml"


# ---- the spec ------------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_the_shipped_spec_names_a_config_file_and_a_concurrency_limit_per_deployment():
    deployments = {d.name: d for d in load_deployment_spec(SPEC).deployments}
    assert set(deployments) == {"nightly", "weekly-retrain", "weekly-transfer"}
    assert {d.flow_name for d in deployments.values()} == {"latent-pipeline", "latent-transfer"}
    for d in deployments.values():
        params = d.flow_parameters()
        assert "config_file" in params and "config" not in params  # the config is read at each run, never frozen
        assert (d.concurrency_limit.limit, d.concurrency_limit.collision_strategy) == (1, "ENQUEUE")
    assert deployments["nightly"].schedules[0].cron == "0 2 * * *"
    assert deployments["weekly-retrain"].flow_parameters()["force"] is True


GOOD = """deployments:
  - name: x
    entrypoint: latent.flows.pipeline:pipeline_flow
    schedules: [{cron: '0 2 * * *'}]
    concurrency_limit: {limit: 1}
"""


@pytest.mark.unit
@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("    concurrency_limit: {limit: 1}\n", "", "deployments.0.concurrency_limit: Field required"),
        ("{limit: 1}", "{limit: 1, collision_strategy: CANCEL_OLD}", "collision_strategy: Input should be"),
        ("'0 2 * * *'", "'0 2 * *'", "expected a 5-field cron expression"),
        ("{cron: '0 2 * * *'}", "{cron: '0 2 * * *', timezone: Mars/Olympus}", "unknown time zone"),
        ("schedules:", "schedule:", "deployments.0.schedules: Field required"),
        ("    schedules", "    tag: [x]\n    schedules", "deployments.0.tag: Extra inputs are not permitted"),
        ("pipeline:pipeline_flow", "pipeline:other_flow", "deployments.0.entrypoint"),
        ("    schedules", "    parameters: {stages: [trian]}\n    schedules", "deployments.0.parameters.stages.0"),
        ("    schedules", "    parameters: {overrides: ['train.epochs=zero']}\n    schedules", "train.epochs"),
        (
            "    schedules",
            "    cron: '0 2 * * *'\n    schedules",
            "deployments.0: cron belong to the old schedules format",
        ),
    ],
)
def test_a_bad_spec_is_refused_naming_the_key(tmp_path, old, new, fragment):
    path = tmp_path / "prefect.yaml"
    assert old in GOOD
    path.write_text(GOOD.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_deployment_spec(path)
    assert fragment in str(err.value)


@pytest.mark.unit
def test_stages_are_a_pipeline_parameter_only(tmp_path):
    path = tmp_path / "prefect.yaml"
    path.write_text(
        GOOD.replace("pipeline:pipeline_flow", "transfer:transfer_flow").replace(
            "    schedules", "    parameters: {stages: [train]}\n    schedules"
        )
    )
    with pytest.raises(ConfigError, match="parameters stages are for the pipeline flow only"):
        load_deployment_spec(path)


# ---- typed parameters ------------------------------------------------------------------------------------------


def _typed(prop: dict[str, Any]) -> bool:
    """A JSON-schema property the Prefect UI renders as a form field: a scalar type, an enum, an array of typed
    items, a reference to a model, or a union of those (with null). A bare object (a dict) is raw JSON."""
    if "$ref" in prop or "enum" in prop or "const" in prop:
        return True
    if "anyOf" in prop or "allOf" in prop:
        members = [p for p in prop.get("anyOf", prop.get("allOf", [])) if p.get("type") != "null"]
        return bool(members) and all(_typed(p) for p in members)
    if prop.get("type") == "array":
        return _typed(prop.get("items", {}))
    return prop.get("type") in {"string", "integer", "number", "boolean"}


@pytest.mark.unit
def test_the_flow_parameters_are_a_typed_form():
    from latent.flows.pipeline import pipeline_flow
    from latent.flows.transfer import transfer_flow

    pipeline = pipeline_flow.parameters.model_dump()
    props = pipeline["properties"]
    untyped = {name: p for name, p in props.items() if not _typed(p)}
    assert not untyped, untyped
    assert set(props["resume"]["enum"]) == {"auto", "require", "never"}
    stage_items = next(p for p in props["stages"]["anyOf"] if p.get("type") == "array")["items"]
    assert stage_items["enum"] == ["ingest", "preprocess", "train", "encode", "report"]
    assert props["force"]["type"] == "boolean"
    transfer = transfer_flow.parameters.model_dump()["properties"]
    assert {"config_file", "overrides", "force"} <= set(transfer)
    assert not {name: p for name, p in transfer.items() if not _typed(p)}


# ---- one server: `prefect deploy` and `latent serve` -------------------------------------------------------------


def _registered(client) -> dict[str, dict[str, Any]]:
    """The deployments on the server, by flow/name: what both ways must agree on (the work-pool fields
    work_pool_name, pull_steps, job_variables and entrypoint are `prefect deploy`'s alone)."""
    flows = {f.id: f.name for f in client.read_flows()}
    out = {}
    for d in client.read_deployments():
        out[f"{flows[d.flow_id]}/{d.name}"] = {
            "schedules": sorted((s.schedule.cron, s.schedule.timezone, s.active) for s in d.schedules),
            "parameters": d.parameters,
            "concurrency_limit": d.global_concurrency_limit.limit if d.global_concurrency_limit else None,
            "collision_strategy": d.concurrency_options.collision_strategy.value if d.concurrency_options else None,
            "tags": sorted(d.tags),
            "description": d.description,
            "paused": d.paused,
            "parameter_schema": d.parameter_openapi_schema,
            "enforce_parameter_schema": d.enforce_parameter_schema,
        }
    return out


@pytest.fixture()
def server_env(prefect_harness, tmp_path) -> dict[str, str]:
    """A directory holding a copy of the spec, and the environment that points `prefect`/`latent` at the test
    harness's server."""
    from prefect.settings import PREFECT_API_URL

    shutil.copy(SPEC, tmp_path / "prefect.yaml")
    env = clean_env(tmp_path / ".prefect")
    return {**env, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "LATENT_HOME": str(tmp_path)}


@pytest.mark.e2e  # `prefect deploy` and `latent serve` as processes
def test_prefect_deploy_and_latent_serve_register_the_same_deployments(server_env, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.states import Scheduled

    with get_client(sync_client=True) as client:
        for d in client.read_deployments():
            client.delete_deployment(d.id)
        with contextlib.suppress(ObjectAlreadyExists):
            client.create_work_pool(WorkPoolCreate(name="latent", type="process"))
        deploy = subprocess.run(
            [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
            cwd=tmp_path,
            env=server_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
        deployed = _registered(client)
        for d in client.read_deployments():
            client.delete_deployment(d.id)

        serve = subprocess.Popen(
            [*latent_command(), "serve"],
            cwd=tmp_path,
            env=server_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            deadline, served = time.time() + 240, {}
            while time.time() < deadline and len(served) < len(deployed):
                assert serve.poll() is None, serve.stdout.read()[-3000:]
                time.sleep(2)
                served = _registered(client)
            # two runs of the nightly deployment come due together (a short one: ingest only): `latent serve` runs
            # them one after the other. Both are due 20 s ahead, beyond the runner's 10 s prefetch, so one poll
            # takes both (created "now", a poll between the two creations could take the first alone and finish it
            # before the next poll, and the limit would never be put to the test)
            nightly = next(d.id for d in client.read_deployments() if d.name == "nightly")
            params = {"stages": ["ingest"], "overrides": [f"workspace={tmp_path / 'ws'}"]}
            due = Scheduled(scheduled_time=datetime.now(UTC) + timedelta(seconds=20))
            runs = [client.create_flow_run_from_deployment(nightly, parameters=params, state=due) for _ in range(2)]
            while time.time() < deadline + 300 and not all(client.read_flow_run(r.id).state.is_final() for r in runs):
                assert serve.poll() is None, serve.stdout.read()[-3000:]
                time.sleep(2)
            runs = sorted((client.read_flow_run(r.id) for r in runs), key=lambda r: r.start_time)
            histories = [[s.name for s in client.read_flow_run_states(r.id)] for r in runs]
            only_second = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[runs[1].id]))
            summaries = [a.data for a in client.read_artifacts(artifact_filter=only_second) if a.type == "markdown"]
        finally:
            os.killpg(serve.pid, signal.SIGTERM)
            serve.wait(timeout=60)
        for d in client.read_deployments():
            client.delete_deployment(d.id)

    assert set(deployed) == {
        "latent-pipeline/nightly",
        "latent-pipeline/weekly-retrain",
        "latent-transfer/weekly-transfer",
    }
    assert served == deployed
    nightly = deployed["latent-pipeline/nightly"]
    assert nightly["schedules"] == [("0 2 * * *", "UTC", True)]
    assert nightly["parameters"] == {"config_file": "default", "overrides": []}
    assert (nightly["concurrency_limit"], nightly["collision_strategy"]) == (1, "ENQUEUE")
    assert nightly["enforce_parameter_schema"] is True  # a run's parameters are checked against the typed schema
    assert [r.state.name for r in runs] == ["Completed", "Completed"], histories
    assert runs[1].start_time >= runs[0].end_time  # never at once
    assert "AwaitingConcurrencySlot" in histories[1] and "AwaitingConcurrencySlot" not in histories[0]
    assert len(summaries) == 1 and "| ingest | reused |" in summaries[0]  # the scheduled run's summary in the UI


# ---- concurrency: a run that comes due while the previous one runs waits --------------------------------------


@pytest.mark.integration
def test_a_second_run_of_a_deployment_waits_while_the_first_runs(prefect_harness):
    from latent.flows.deployments import build_deployments
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.states import Completed, Pending, Running

    nightly = next(d for d in build_deployments(SPEC) if d.name == "nightly")
    deployment_id = nightly.apply()
    with get_client(sync_client=True) as client:
        try:
            first = client.create_flow_run_from_deployment(deployment_id)
            second = client.create_flow_run_from_deployment(deployment_id)  # both due now: they overlap
            # a runner (`latent serve`) or a worker proposes Pending before it starts a run; the server holds the
            # deployment's one slot for the first run until it finishes
            assert client.set_flow_run_state(first.id, Pending()).state.is_pending()
            waiting = client.set_flow_run_state(second.id, Pending()).state
            assert waiting.is_scheduled() and waiting.name == "AwaitingConcurrencySlot"
            assert client.set_flow_run_state(first.id, Running()).state.is_running()
            assert client.set_flow_run_state(second.id, Pending()).state.name == "AwaitingConcurrencySlot"
            assert client.set_flow_run_state(first.id, Completed()).state.is_completed()
            assert client.set_flow_run_state(second.id, Pending()).state.is_pending()  # now it may start
            with pytest.raises(PrefectHTTPStatusError, match="409"):  # the typed schema refuses a bad stage
                client.create_flow_run_from_deployment(deployment_id, parameters={"stages": ["trian"]})
        finally:
            client.delete_deployment(deployment_id)
