"""The MLflow UI in a real browser: after `latent run`, `latent ui` opens the experiment on its runs table (not
the GenAI traces overview), with runs named after what ran and the Dataset column filled from `mlflow.log_input`.

Skips when there is no chromium binary, unless LATENT_REQUIRE_BROWSER=1 (CI sets it), which makes that a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from tests.helpers import ROOT, SMALL, clean_env, free_port, wait_http

pytestmark = pytest.mark.e2e

LATENT = Path(sys.executable).with_name("latent")


def test_ui_opens_on_named_runs_with_their_datasets(browser, tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "default.yaml").write_text((ROOT / "conf" / "default.yaml").read_text())
    env = clean_env(tmp_path / ".prefect")
    sets = [arg for s in SMALL for arg in ("--set", s)]
    run = subprocess.run(
        [str(LATENT), "run", *sets], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'workspace' / 'mlflow.db'}"
    experiment = mlflow.MlflowClient(uri).get_experiment_by_name("latent")

    port = free_port()
    server = subprocess.Popen(
        [str(LATENT), "ui", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", server)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        # MLflow 3.17's UI opens on the GenAI pages unless told otherwise (?workflowType=, kept in localStorage),
        # whatever the experiment's mlflow.experimentKind; `latent ui` prints this link
        page.goto(f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}?workflowType=machine_learning")
        try:
            page.get_by_text("digits · vae_mlp · pipeline").first.wait_for(timeout=60000)
        finally:
            page.screenshot(path=str(tmp_path / "mlflow-ui.png"), full_page=True)
            print("screenshot:", tmp_path / "mlflow-ui.png")
        assert "/traces" not in page.url and "overview" not in page.url, page.url
        text = page.inner_text("body")
        assert "Dataset" in text, text[:2000]
        assert "No data available for the selected time range" not in text  # the GenAI overview's empty charts
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
