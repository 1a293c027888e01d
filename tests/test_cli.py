"""The `latent` command as a user runs it: a real process, Prefect's ephemeral server, MLflow on SQLite."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pyarrow.parquet as pq
import pytest

from latent.data import load_dataset_arrays
from latent.tables import load_latent_arrays, read_table_info
from latent.tracking import use_tracking_uri
from tests.helpers import ROOT, SMALL, clean_env, latent_cmd, latent_command, one_line_error

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cli")
    (cwd / "conf").mkdir()
    (cwd / "conf" / "default.yaml").write_text((ROOT / "conf" / "default.yaml").read_text())
    sets = [arg for s in SMALL for arg in ("--set", s)]
    proc = latent_cmd("run", *sets, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, proc


def test_run_prints_per_stage_durations(cli_run):
    _, proc = cli_run
    for stage in ("ingest", "preprocess", "train", "encode", "report", "total"):
        assert re.search(rf"│ {stage}\s+│\s+\d+\.\d │", proc.stdout), stage
    assert "report.html" in proc.stdout


def test_run_leaves_everything_under_the_workspace(cli_run):
    cwd, _ = cli_run
    ws = cwd / "workspace"
    assert {p.name for p in ws.iterdir()} >= {
        "raw",
        "datasets",
        "models",
        "latents",
        "reports",
        "mlflow.db",
        "mlartifacts",
    }
    assert not [p for p in ws.rglob(".tmp-*")]


def test_run_tracks_epochs_and_a_model_that_encodes_like_the_table(cli_run):
    cwd, _ = cli_run
    uri = f"sqlite:///{cwd / 'workspace' / 'mlflow.db'}"
    use_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("latent")
    parents = client.search_runs([experiment.experiment_id], "tags.`latent.kind` = 'pipeline'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["latent.prefect_flow_run_id"]
    (train_run,) = client.search_runs([experiment.experiment_id], "tags.`latent.stage` = 'train'")
    assert train_run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    history = client.get_metric_history(train_run.info.run_id, "val_loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]

    table_path = train_run.data.tags["latent.latent_table"]
    table = read_table_info(table_path)
    part = next(Path(table_path).glob("split=test/*.parquet"))
    schema = pq.read_schema(part)
    assert schema.names == ["id", "label", "z_mean", "z_logvar", "recon_error"]
    assert str(schema.field("z_mean").type) == "fixed_size_list<element: float>[8]"
    meta = {k.decode(): v.decode() for k, v in schema.metadata.items()}
    assert meta["latent.mlflow_run_id"] == train_run.info.run_id
    assert meta["latent.model_uri"] == train_run.data.tags["latent.model_uri"]
    assert meta["latent.latent_dim"] == "8" and meta["latent.schema_version"] == "1"
    codes = load_latent_arrays(table_path)
    assert len(codes["id"]) == 1797 and table.latent_dim == 8
    ids, x, _ = load_dataset_arrays(table.info["dataset"]["path"])
    order = np.argsort(ids)
    predicted = np.asarray(mlflow.pyfunc.load_model(train_run.data.tags["latent.model_uri"]).predict(x[order]))
    np.testing.assert_allclose(predicted, codes["z_mean"], rtol=1e-5, atol=1e-5)


def test_run_writes_coordinates_and_a_report_with_images(cli_run):
    cwd, _ = cli_run
    (report_dir,) = (cwd / "workspace" / "reports").iterdir()
    assert pq.read_table(report_dir / "coordinates.parquet").num_rows == 1797
    html = (report_dir / "report.html").read_text()
    for section in ("latent-map", "pca", "tsne", "kl", "reconstructions", "samples", "interpolation", "traversals"):
        assert f'<section id="{section}"' in html, section
    assert 'src="http' not in html


def test_rerun_of_one_stage_alone_reuses_upstream_outputs(cli_run):
    cwd, _ = cli_run
    proc = latent_cmd("encode", "--set", "train.epochs=4", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(reused)" in proc.stdout


def test_bad_set_key_is_one_line_naming_the_key(tmp_path):
    line = one_line_error(latent_cmd("run", "--set", "train.epoch=3", cwd=tmp_path))
    assert line.startswith("error: --set train.epoch=3: train.epoch: unknown key; expected one of: epochs")
    assert not (tmp_path / "workspace").exists()


def test_bad_set_value_is_one_line_naming_key_and_value(tmp_path):
    line = one_line_error(latent_cmd("run", "--set", "train.epochs=ten", cwd=tmp_path))
    assert line == "error: --set train.epochs=ten: train.epochs: input should be a valid integer, got 'ten'"


def test_bad_config_file_is_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  latent_dim: -2\n")
    line = one_line_error(latent_cmd("train", "--config", str(bad), cwd=tmp_path))
    assert line == f"error: {bad}: model.latent_dim: input should be greater than 0, got -2"


def test_stage_without_inputs_says_what_to_run_first(tmp_path):
    line = one_line_error(latent_cmd("train", cwd=tmp_path))
    assert "run `latent preprocess` first" in line


def test_debug_shows_the_traceback(tmp_path):
    proc = latent_cmd("run", "--set", "train.epochs=ten", "--debug", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_ui_serves_the_workspace_store_on_loopback(cli_run):
    import json
    import socket
    import time
    import urllib.request

    cwd, _ = cli_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = clean_env(cwd / ".prefect")
    command = latent_command()
    server = subprocess.Popen(
        [*command, "ui", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=latent"
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    body = json.load(response)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(1)
        assert body["experiment"]["name"] == "latent"
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=False)
        if listening.returncode == 0 and listening.stdout.strip():
            assert all("127.0.0.1" in line for line in listening.stdout.splitlines()), listening.stdout
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_query_prints_results_and_writes_files(cli_run):
    cwd, _ = cli_run
    proc = latent_cmd("query", "SELECT label, count(*) AS n FROM latents GROUP BY label ORDER BY label", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"│ 9\s+│ 180\s+│", proc.stdout)
    proc = latent_cmd("query", "SELECT id, z_mean FROM latents", "--out", "all.parquet", cwd=cwd)
    assert proc.returncode == 0 and "1797 rows written" in proc.stdout
    assert pq.read_table(cwd / "all.parquet").num_rows == 1797


def test_query_that_writes_is_refused_in_one_line(cli_run):
    cwd, _ = cli_run
    line = one_line_error(latent_cmd("query", "DELETE FROM latents", cwd=cwd))
    assert line == "error: query: latent query is read-only; DELETE statements are refused (use SELECT)"


def test_neighbors_and_tables_commands(cli_run):
    cwd, _ = cli_run
    proc = latent_cmd("neighbors", "digits-00000", "-k", "5", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert len(re.findall(r"│ digits-\d{5} │", proc.stdout)) == 5
    proc = latent_cmd("tables", cwd=cwd)
    assert proc.returncode == 0 and "(latents)" in proc.stdout and "1797 rows, k=8" in proc.stdout
    line = one_line_error(latent_cmd("neighbors", "digits-99999", cwd=cwd))
    assert line == "error: id 'digits-99999' is not in the table"


def test_run_end_to_end_on_a_shapes_subset(tmp_path, prefect_harness, monkeypatch, latent_app):
    """The shapes source end to end; in this process (`cli_run` is the real one): a process adds only start-up."""
    monkeypatch.chdir(tmp_path)
    sets = [
        a
        for s in [
            *SMALL,
            "dataset.source=shapes",
            "dataset.name=shapes",
            "dataset.shapes.n_samples=300",
            "tracking.registered_model=latent-shapes",
            "report.disentanglement_budget=64",
        ]
        for a in ("--set", s)
    ]
    result = latent_app("run", *sets)
    assert result.exit_code == 0, result.stderr[-3000:]
    (table,) = (tmp_path / "workspace" / "latents").glob("*/*")
    codes = pq.read_table(next(table.glob("split=train/*.parquet")))
    assert {"shape_idx", "scale_value", "orientation_value"} <= set(codes.column_names)
    (report,) = (tmp_path / "workspace" / "reports").glob("*/report.html")
    html = report.read_text()
    for section in ("latent-map", "reconstructions", "traversals", "probes", "disentanglement"):
        assert f'<section id="{section}"' in html, section
    metrics = json.loads((report.parent / "metrics.json").read_text())
    for name in (
        "mig",
        "dci_disentanglement",
        "sap",
        "modularity",
        "factorvae_eval_accuracy",
        "beta_vae_eval_accuracy",
    ):
        assert 0.0 <= metrics[f"disentanglement_{name}"] <= 1.0, name
    result = latent_app("disentangle", "--budget", "32", "--no-interventional", *sets)
    assert result.exit_code == 0, result.stderr[-3000:]
    assert "mig" in result.stdout and "factorvae" not in result.stdout and "MLflow run" in result.stdout


def test_run_end_to_end_on_an_image_folder_skipping_a_bad_file(tmp_path, prefect_harness, monkeypatch, latent_app):
    """An image folder end to end, in this process (`cli_run` is the real one)."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(30):
            Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    (tmp_path / "imgs" / "a" / "readme.txt").write_text("not an image")
    sets = [
        a
        for s in [
            *SMALL,
            "dataset.source=image_folder",
            "dataset.name=folder",
            f"dataset.path={tmp_path / 'imgs'}",
            "dataset.image.size=[16, 16]",
            "dataset.image.on_bad_file=skip",
            "tracking.registered_model=null",
        ]
        for a in ("--set", s)
    ]
    result = latent_app("run", *sets)
    assert result.exit_code == 0, result.stderr[-3000:]
    assert "skipped 1 unreadable file(s)" in result.stdout  # the summary names the quarantine
    uri = f"sqlite:///{tmp_path / 'workspace' / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    (parent,) = client.search_runs(
        [client.get_experiment_by_name("latent").experiment_id], "tags.`latent.kind` = 'pipeline'"
    )
    assert parent.data.metrics["skipped_files"] == 1
    assert "preprocess/quarantine.parquet" in {a.path for a in client.list_artifacts(parent.info.run_id, "preprocess")}
    (table,) = (tmp_path / "workspace" / "latents").glob("*/*")
    assert sum(pq.read_metadata(p).num_rows for p in table.glob("split=*/*.parquet")) == 60


def test_version_and_shell_completion():
    proc = latent_cmd("--version", cwd=ROOT)
    assert proc.returncode == 0 and re.fullmatch(r"latent \d+\.\d+\.\d+\S*\n", proc.stdout)
    proc = latent_cmd("--help", cwd=ROOT)
    assert "--install-completion" in proc.stdout and "--show-completion" in proc.stdout


def test_preprocess_before_ingest_says_so_before_any_server_starts(tmp_path):
    import time

    started = time.perf_counter()
    line = one_line_error(latent_cmd("preprocess", cwd=tmp_path))
    assert "run `latent ingest` first" in line
    assert time.perf_counter() - started < 10  # Prefect's temporary server alone takes ~10 s to start here


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["tables"], "(latents)"),
        (["query", "SELECT count(*) AS n, min(z_mean) AS z FROM latents"], "│ 1797 │ ["),
        (["neighbors", "digits-00000", "-k", "5"], "5 nearest to digits-00000"),
    ],
)
def test_analyst_commands_import_only_duckdb(cli_run, command, shown):
    """On a real workspace: the answer is right, and none of torch, MLflow, Prefect, Dask, scikit-learn, pyarrow
    or the pydantic config models was imported to give it."""
    cwd, _ = cli_run
    script = (
        "import sys\n"
        "from latent.flows.cli import main\n"
        f"sys.argv = ['latent', *{command!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "heavy = {'torch', 'mlflow', 'prefect', 'dask', 'distributed', 'sklearn', 'pyarrow', 'latent.config'}\n"
        "print('heavy:', sorted(heavy & set(sys.modules)))\n"
    )
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.stdout.strip().endswith("heavy: []"), proc.stdout + proc.stderr
    assert shown in proc.stdout, proc.stdout


def test_analyst_commands_check_the_workspace_key(tmp_path):
    line = one_line_error(latent_cmd("tables", "--set", "workspace=5", cwd=tmp_path))
    assert line == "error: --set workspace=5: workspace: input should be a valid string, got 5"


def test_ctrl_c_ends_with_one_line_and_exit_130(tmp_path):
    import signal
    import time

    proc = subprocess.Popen(
        [
            *latent_command(),
            "run",
            "--set",
            "train.epochs=50",
        ],
        cwd=tmp_path,
        env=clean_env(tmp_path / ".prefect"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(8)  # mid start-up or mid-stage
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl+C does: the whole foreground group
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("interrupted (Ctrl+C)"), stderr[-3000:]
    assert "Traceback" not in stderr


def test_the_library_log_lines_are_in_the_prefect_run_log(cli_run):
    import sqlite3

    cwd, proc = cli_run
    (db,) = (cwd / ".prefect").rglob("prefect.db")  # the ephemeral server's store, kept in PREFECT_HOME
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT name, message FROM log WHERE name LIKE 'latent.%'").fetchall()
    names = {name for name, _ in rows}
    assert {"latent.encode", "latent.report"} <= names, rows
    assert any(m.startswith("latent table ") for _, m in rows)
    assert "Successfully registered model" not in proc.stderr + proc.stdout
