"""Registered model names and the champion alias, on a real MLflow SQLite store."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import mlflow
import pytest

from latent.config import load_config
from latent.tracking import Tracking, promote_if_better, setup_tracking
from latent.workspace import Workspace

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("sets", "dataset", "registered"),
    [
        ([], "digits", "digits-vae_mlp"),
        (["dataset.source=shapes", "model.name=vae_conv"], "shapes", "shapes-vae_conv"),
        (["dataset.source=image_folder", "dataset.path=/x/my_photos"], "my-photos", "my-photos-vae_mlp"),
        (["dataset.source=tabular", "dataset.path=/data/wdbc.csv"], "wdbc", "wdbc-vae_mlp"),
        (["dataset.source=tabular", "dataset.path=/data/UCI Adult/*.csv"], "uci-adult", "uci-adult-vae_mlp"),
        (["dataset.source=npz", "dataset.path=/d/x.npz", "dataset.name=mine"], "mine", "mine-vae_mlp"),
        (["tracking.registered_model=preset-name"], "digits", "preset-name"),
        (["tracking.registered_model=null"], "digits", None),
    ],
)
def test_registered_model_name_defaults_from_the_dataset_and_model(sets, dataset, registered):
    cfg = load_config(None, sets)
    assert cfg.dataset.name == dataset
    assert cfg.tracking.registered_model == registered


def test_two_datasets_never_share_a_registered_model():
    a = load_config(None, ["dataset.source=tabular", "dataset.path=/d/wdbc.csv"])
    b = load_config(None, ["dataset.source=tabular", "dataset.path=/d/iris.csv"])
    assert a.tracking.registered_model != b.tracking.registered_model


def _version(tracking: Tracking, name: str, val_loss: float) -> str:
    """A real run with a best_val_loss and a real model version of it in the registry."""
    client = mlflow.MlflowClient(tracking.uri)
    run = client.create_run(tracking.experiment_id)
    client.log_metric(run.info.run_id, "best_val_loss", val_loss)
    client.set_terminated(run.info.run_id)
    with contextlib.suppress(mlflow.exceptions.MlflowException):
        client.create_registered_model(name)
    return str(client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id).version)


def test_champion_compares_only_versions_of_the_same_dataset_version(tmp_path):
    cfg = load_config(None, [f"workspace={tmp_path / 'ws'}"])
    ws = Workspace.at(cfg.workspace)
    tracking = setup_tracking(cfg.tracking, ws)
    client = mlflow.MlflowClient(tracking.uri)
    name = "digits-vae_mlp"

    def champion() -> str:
        return str(client.get_model_version_by_alias(name, "champion").version)

    v1 = _version(tracking, name, 1.0)
    assert promote_if_better(tracking, name, v1, 1.0, "champion", "dsA")
    worse = _version(tracking, name, 2.0)
    assert not promote_if_better(tracking, name, worse, 2.0, "champion", "dsA")
    assert champion() == v1
    better = _version(tracking, name, 0.5)
    assert promote_if_better(tracking, name, better, 0.5, "champion", "dsA")
    assert champion() == better
    # a new dataset version: its first model takes the alias even with a higher loss (other data, other scale)
    new_data = _version(tracking, name, 3.0)
    assert promote_if_better(tracking, name, new_data, 3.0, "champion", "dsB")
    assert champion() == new_data
    assert not promote_if_better(tracking, name, _version(tracking, name, 4.0), 4.0, "champion", "dsB")
    assert champion() == new_data
    assert client.get_model_version(name, worse).tags["latent.dataset_version"] == "dsA"
    assert client.get_model_version(name, new_data).tags["latent.dataset_version"] == "dsB"


def test_two_datasets_keep_their_own_champions(tmp_path):
    ws = Workspace.at(tmp_path / "ws")
    tracking = setup_tracking(load_config(None, [f"workspace={ws.root}"]).tracking, ws)
    client = mlflow.MlflowClient(tracking.uri)
    good = _version(tracking, "wdbc-vae_mlp", 0.1)
    assert promote_if_better(tracking, "wdbc-vae_mlp", good, 0.1, "champion", "dsW")
    bad = _version(tracking, "digits-vae_mlp", 9.0)
    assert promote_if_better(tracking, "digits-vae_mlp", bad, 9.0, "champion", "dsD")
    assert str(client.get_model_version_by_alias("wdbc-vae_mlp", "champion").version) == good
    assert str(client.get_model_version_by_alias("digits-vae_mlp", "champion").version) == bad


def test_experiment_opens_on_the_runs_table(tmp_path):
    ws = Workspace.at(tmp_path / "ws")
    tracking = setup_tracking(load_config(None, [f"workspace={ws.root}"]).tracking, ws)
    experiment = mlflow.MlflowClient(tracking.uri).get_experiment(tracking.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_stage_runs_are_named_and_log_their_input_table(tmp_path):
    from latent.data import ingest, preprocess
    from latent.encode import encode
    from latent.train import train
    from tests.helpers import small_config

    cfg = small_config(tmp_path / "ws", "train.epochs=1", "dask.n_workers=1")
    ws = Workspace.at(cfg.workspace)
    tracking = setup_tracking(cfg.tracking, ws).naming(cfg.dataset.name, cfg.model.name)
    ing = ingest(cfg.dataset, ws)
    pre = preprocess(ing.raw_path, ing.fingerprint, cfg.preprocess, cfg.dask, ws)
    tr = train(pre.dataset_path, cfg.model, cfg.train, ws, tracking, cfg.tracking.registered_model)
    enc = encode(pre.dataset_path, tr.model_uri, tr.model_version, cfg.encode, ws, tracking, tr.run_id)
    client = mlflow.MlflowClient(tracking.uri)
    version = Path(pre.dataset_path).name
    for run_id, name, context in ((tr.run_id, "train · digits · vae_mlp", "training"), (enc.run_id, None, "inference")):
        run = client.get_run(run_id)
        if name:
            assert run.info.run_name == name
        else:
            assert run.info.run_name == "encode · digits · vae_mlp"
        (logged,) = run.inputs.dataset_inputs
        assert logged.dataset.name == "digits"
        assert logged.dataset.digest == version[:36]
        assert version in logged.dataset.source
        assert {"id", "split", "x"} <= {c["name"] for c in json.loads(logged.dataset.schema)["mlflow_colspec"]}
        assert {t.key: t.value for t in logged.tags}["mlflow.data.context"] == context
    assert (
        client.get_model_version(cfg.tracking.registered_model, tr.registered_version).tags["latent.dataset_version"]
        == version
    )
