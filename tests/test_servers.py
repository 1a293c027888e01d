"""The pipeline against real servers on loopback: `prefect server start`, `mlflow server`, a Dask scheduler with
two workers, all started here as processes and stopped at the end; and `latent serve` registering schedules."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from tests.helpers import ROOT, SMALL, clean_env, free_port, wait_http

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def http_json(url: str, body: dict | None = None) -> dict | list:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("servers")
    env = clean_env(tmp / "prefect-home")
    prefect_port, mlflow_port, dask_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen] = []
    logs = []

    def start(name: str, args: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(tmp / f"{name}.log", "w")  # noqa: SIM115 - closed at teardown
        logs.append(log)
        proc = subprocess.Popen(
            args,
            env={**env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    try:
        prefect = start(
            "prefect",
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
            {"PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2"},
        )
        mlflow_server = start(
            "mlflow",
            [
                str(BIN / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(mlflow_port),
                "--backend-store-uri",
                f"sqlite:///{tmp / 'mlflow-server.db'}",
                "--artifacts-destination",
                (tmp / "mlflow-artifacts").as_uri(),
                "--workers",
                "1",
            ],
        )
        scheduler = start(
            "dask-scheduler",
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(dask_port), "--no-dashboard"],
        )
        for i in range(2):
            start(
                f"dask-worker-{i}",
                [
                    str(BIN / "dask"),
                    "worker",
                    f"tcp://127.0.0.1:{dask_port}",
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                ],
            )
        wait_http(f"http://127.0.0.1:{prefect_port}/api/health", prefect)
        wait_http(f"http://127.0.0.1:{mlflow_port}/health", mlflow_server)
        from distributed import Client

        with Client(f"tcp://127.0.0.1:{dask_port}", timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        assert scheduler.poll() is None
        yield {
            "tmp": tmp,
            "env": env,
            "prefect_api": f"http://127.0.0.1:{prefect_port}/api",
            "mlflow_uri": f"http://127.0.0.1:{mlflow_port}",
            "dask": f"tcp://127.0.0.1:{dask_port}",
        }
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in logs:
            log.close()
        assert all(p.poll() is not None for p in procs)


def test_pipeline_runs_against_prefect_mlflow_and_dask_servers(servers):
    workspace = servers["tmp"] / "ws"
    sets = [
        *SMALL,
        f"workspace={workspace}",
        f"tracking.uri={servers['mlflow_uri']}",
        f"dask.address={servers['dask']}",
        "encode.engine=dask",
        f"orchestration.prefect_api_url={servers['prefect_api']}",
    ]
    proc = subprocess.run(
        [str(BIN / "latent"), "run", *[a for s in sets for a in ("--set", s)]],
        cwd=ROOT,
        env=servers["env"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    flow_runs = http_json(f"{servers['prefect_api']}/flow_runs/filter", {"limit": 10})
    assert [r["state_type"] for r in flow_runs] == ["COMPLETED"]
    flow_run_id = flow_runs[0]["id"]

    client = mlflow.MlflowClient(servers["mlflow_uri"])
    experiment = client.get_experiment_by_name("latent")
    runs = client.search_runs([experiment.experiment_id])
    stages = {r.data.tags.get("latent.stage", r.data.tags.get("latent.kind")) for r in runs}
    assert stages == {"pipeline", "train", "encode", "report"}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.tags["latent.prefect_flow_run_id"] == flow_run_id for r in runs)
    versions = client.search_model_versions("name='digits-vae_mlp'")
    assert len(versions) == 1
    train_run = next(r for r in runs if r.data.tags.get("latent.stage") == "train")
    assert client.list_artifacts(train_run.info.run_id) or client.get_logged_model(
        train_run.data.tags["latent.model_version"]
    )
    # the dataset was preprocessed and encoded on the external cluster: shards from the workers
    table = Path(train_run.data.tags["latent.latent_table"])
    assert len(list(table.glob("split=train/part-*.parquet"))) == 4


def test_serve_registers_a_deployment_whose_schedule_produces_runs(servers):
    spec = servers["tmp"] / "prefect.yaml"
    spec.write_text(
        "deployments:\n"
        "  - name: every-minute\n"
        "    entrypoint: latent.flows.pipeline:pipeline_flow\n"
        "    schedules: [{cron: '* * * * *'}]\n"
        "    concurrency_limit: {limit: 1}\n"
        f"    parameters: {{overrides: ['workspace={servers['tmp'] / 'served'}', 'train.epochs=2',"
        f" 'orchestration.prefect_api_url={servers['prefect_api']}']}}\n"
    )
    server = subprocess.Popen(
        [str(BIN / "latent"), "serve", "--spec", str(spec)],
        cwd=ROOT,
        env=servers["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 180
        scheduled: list = []
        while time.time() < deadline and not scheduled:
            time.sleep(2)
            assert server.poll() is None, server.stdout.read()[-3000:]
            deployments = http_json(f"{servers['prefect_api']}/deployments/filter", {"limit": 10})
            mine = [d for d in deployments if d["name"] == "every-minute"]
            if not mine:
                continue
            deployment = mine[0]
            scheduled = http_json(
                f"{servers['prefect_api']}/flow_runs/filter",
                {
                    "flow_runs": {
                        "deployment_id": {"any_": [deployment["id"]]},
                        "state": {"type": {"any_": ["SCHEDULED"]}},
                    }
                },
            )
        assert scheduled, "no scheduled runs appeared"
        assert deployment["schedules"][0]["schedule"]["cron"] == "* * * * *"
        assert "train.epochs=2" in deployment["parameters"]["overrides"]  # the config is read when each run starts
        assert all(r["expected_start_time"].split(":")[2].startswith("00") for r in scheduled)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def _group_alive(pgid: int) -> list[int]:
    import psutil

    alive = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return alive


def test_sigterm_to_latent_ui_stops_the_server_and_its_workers_and_frees_the_port(tmp_path):
    import psutil

    port = free_port()
    ui = subprocess.Popen(
        [str(BIN / "latent"), "ui", "--port", str(port), "--set", f"workspace={tmp_path / 'ws'}"],
        cwd=tmp_path,
        env=clean_env(tmp_path / ".prefect"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", ui)
        family = psutil.Process(ui.pid).children(recursive=True)
        assert len(family) >= 2  # mlflow's command line and the uvicorn it starts (and its workers)
        ui.send_signal(signal.SIGTERM)  # to `latent ui` alone, as systemd or Docker would
        assert ui.wait(timeout=60) == -signal.SIGTERM  # it ends by the signal, after stopping the server
        _, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, [p.cmdline() for p in alive]
        server_group = family[0].pid
        assert not _group_alive(server_group)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))  # the port is free again
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
        for pid in _group_alive(ui.pid):
            os.kill(pid, signal.SIGKILL)
