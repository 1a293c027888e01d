"""What `latent serve` and `latent ui` decide before starting anything: the Prefect server of a deployment spec
(flows/servers.py) and the `mlflow server` invocation on the workspace's store (latent.tracking.mlflow_ui)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from latent.flows.servers import spec_file, spec_prefect_server, use_prefect_server

from latent.config import TrackingConfig
from latent.errors import LatentError
from latent.tracking import mlflow_ui
from latent.workspace import Workspace

pytestmark = pytest.mark.integration


def _schedules(tmp_path: Path, *urls: str | None) -> Path:
    lines = ["deployments:"]
    for i, url in enumerate(urls):
        lines += [
            f"  - name: d{i}",
            "    entrypoint: latent.flows.pipeline:pipeline_flow",
            '    schedules: [{cron: "0 2 * * *"}]',
            "    concurrency_limit: {limit: 1}",
        ]
        if url:
            lines.append(f"    parameters: {{overrides: ['orchestration.prefect_api_url={url}']}}")
    path = tmp_path / "prefect.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_one_server_the_deployments_name_is_chosen(tmp_path):
    assert spec_prefect_server(_schedules(tmp_path, None, None)) is None
    url = "http://127.0.0.1:4200/api"
    assert spec_prefect_server(_schedules(tmp_path, url, None, url)) == url


def test_deployments_naming_different_servers_are_an_error(tmp_path):
    path = _schedules(tmp_path, "http://a:4200/api", "http://b:4200/api")
    with pytest.raises(LatentError, match="deployments name different Prefect servers"):
        spec_prefect_server(path)


def test_a_given_spec_wins_and_a_server_url_goes_to_the_environment(tmp_path, monkeypatch):
    assert spec_file(tmp_path / "x.yaml") == tmp_path / "x.yaml"
    assert spec_file(None) == Path("prefect.yaml")  # where `prefect deploy` finds it too
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    use_prefect_server(None)
    assert "PREFECT_API_URL" not in os.environ
    use_prefect_server("http://h:1/api")
    assert os.environ["PREFECT_API_URL"] == "http://h:1/api"


def test_mlflow_ui_serves_the_workspace_store_and_its_artifacts(tmp_path):
    workspace = Workspace.at(tmp_path / "ws")
    ui = mlflow_ui(TrackingConfig(), workspace, "127.0.0.1", 5123)
    assert ui.command[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert ui.store.startswith("sqlite:") and ui.command[ui.command.index("--backend-store-uri") + 1] == ui.store
    assert ui.command[ui.command.index("--default-artifact-root") + 1] == workspace.artifact_root.as_uri()
    assert ui.command[ui.command.index("--port") + 1] == "5123"
    assert ui.link == "http://127.0.0.1:5123/#/experiments?workflowType=machine_learning"
    remote = mlflow_ui(TrackingConfig(uri="http://mlflow:5000"), workspace, "0.0.0.0", 5000)
    assert "--default-artifact-root" not in remote.command and remote.store == "http://mlflow:5000"
