"""Concurrent runs on one workspace: three `latent run` processes started together, two of them identical.

Each must finish with its own complete outputs: readable tables with every row, one registered model version per
training, every MLflow run FINISHED, nothing half-written left behind. They share one MLflow SQLite store, one
Prefect home, the dataset table (same source and preprocessing) and the catalog.
"""

from __future__ import annotations

import subprocess

import mlflow
import numpy as np
import pytest

from latent.tables import list_tables, load_latent_arrays, read_catalog, read_table_info
from latent.tracking import use_tracking_uri
from latent.workspace import Workspace
from tests.helpers import ROOT, SMALL, clean_env, latent_command

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]  # three pipelines on two cores

RUNS = {
    "a": ["train.seed=1", "model.latent_dim=4"],
    "b": ["train.seed=2", "model.latent_dim=6"],
    "b_again": ["train.seed=2", "model.latent_dim=6"],  # identical to b
}
FAST_REPORT = ["report.map_points=500", "report.traversal_dims=2", "report.probes=false"]


@pytest.fixture(scope="module")
def concurrent(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("concurrent")
    workspace = cwd / "workspace"
    command = latent_command()
    procs = {}
    for name, sets in RUNS.items():
        args = ["run", "--config", str(ROOT / "conf" / "default.yaml"), "--set", f"workspace={workspace}"]
        for s in [*SMALL, *FAST_REPORT, *sets]:
            args += ["--set", s]
        with open(cwd / f"{name}.log", "wb") as log:
            procs[name] = subprocess.Popen(
                [*command, *args], cwd=cwd, env=clean_env(cwd / ".prefect"), stdout=log, stderr=subprocess.STDOUT
            )
    codes = {name: proc.wait(timeout=1500) for name, proc in procs.items()}
    logs = {name: (cwd / f"{name}.log").read_text() for name in RUNS}
    uri = f"sqlite:///{workspace / 'mlflow.db'}"
    use_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("latent")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return workspace, codes, logs, client, runs


def test_all_runs_complete(concurrent):
    _, codes, logs, _, _ = concurrent
    for name, code in codes.items():
        assert code == 0, f"{name} exited {code}:\n{logs[name][-3000:]}"


def test_every_mlflow_run_finished(concurrent):
    _, _, _, _, runs = concurrent
    pipelines = [r for r in runs if r.data.tags.get("latent.kind") == "pipeline"]
    assert len(pipelines) == len(RUNS)
    assert {r.info.status for r in runs} == {"FINISHED"}, [(r.info.run_name, r.info.status) for r in runs]


def test_each_training_is_its_own_registered_version(concurrent):
    _, _, _, client, runs = concurrent
    trainings = [r for r in runs if r.data.tags.get("latent.stage") == "train"]
    # the identical pipelines either both trained (started together) or the later one reused the first: both fine
    assert 2 <= len(trainings) <= 3
    registered = {r.data.tags["latent.registered_version"] for r in trainings}
    versions = {str(v.version) for v in client.search_model_versions("name = 'digits-vae_mlp'")}
    assert registered == versions and len(versions) == len(trainings)
    champion = client.get_model_version_by_alias("digits-vae_mlp", "champion")
    assert str(champion.version) in versions


def test_tables_are_distinct_whole_and_correct(concurrent):
    workspace, _, _, _, runs = concurrent
    encodings = [r for r in runs if r.data.tags.get("latent.stage") == "encode"]
    assert len(encodings) == len(RUNS)
    tables = {r.data.tags["latent.table_path"] for r in encodings}
    dims = sorted(read_table_info(t).latent_dim for t in tables)
    assert dims in ([4, 6], [4, 6, 6])  # b and b_again share a table only if b_again reused b's model
    arrays = {t: load_latent_arrays(t) for t in tables}
    for t, a in arrays.items():
        assert len(a["id"]) == 1797 and len(set(a["id"])) == 1797, t
        assert np.isfinite(a["z_mean"]).all()
    sixes = [a for t, a in arrays.items() if read_table_info(t).latent_dim == 6]
    if len(sixes) == 2:  # two trainings of one config, at the same time: the same seeded result
        np.testing.assert_allclose(sixes[0]["z_mean"], sixes[1]["z_mean"], rtol=1e-5, atol=1e-6)
    ws = Workspace(workspace)
    assert {str(t.path) for t in list_tables(ws)} == tables
    assert set(read_catalog(ws).column("table_path").to_pylist()) == tables


def test_one_dataset_table_and_nothing_half_written_left(concurrent):
    workspace, _, _, _, _ = concurrent
    datasets = [d for d in (workspace / "datasets").iterdir()]
    assert len(datasets) == 1 and (datasets[0] / "manifest.json").is_file()
    assert not [p for p in workspace.rglob(".tmp-*") if "mlartifacts" not in p.parts]
