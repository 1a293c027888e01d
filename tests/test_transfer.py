"""Transfer learning: the shift metrics, probes, fine-tuning from source weights, refusals, and the flow's runs."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch
from latent.flows.transfer import transfer_flow

from latent.config import ShiftConfig
from latent.data.dataset import write_dataset_table
from latent.errors import DataError
from latent.transfer import frechet_distance, make_shifted_dataset, mmd_rbf, probe_accuracy, shift_images
from latent.workspace import Workspace

pytestmark = pytest.mark.integration


def test_mmd_is_near_zero_for_one_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(500, 4)), rng.normal(size=(500, 4))
    assert abs(mmd_rbf(a, a)) < 0.01 and abs(mmd_rbf(a, b)) < 0.01
    shifted = [mmd_rbf(a, b + d) for d in (0.25, 0.5, 1.0, 2.0)]
    assert shifted == sorted(shifted) and shifted[0] > 0.01


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + np.array([1.0, 2.0, 0.0])) == pytest.approx(5.0, rel=1e-3)


def test_probes_find_separable_classes_and_not_noise():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 100)
    z = np.eye(4)[y] * 5 + rng.normal(0, 0.3, (400, 4))
    scores = probe_accuracy(z[::2], y[::2], z[1::2], y[1::2], [10, None], repeats=2)
    assert scores["10"] > 0.95 and scores["all"] > 0.95
    noise = probe_accuracy(rng.normal(size=(200, 4)), y[::2], rng.normal(size=(200, 4)), y[1::2], [None])
    assert noise["all"] < 0.45


def test_shifts_are_the_documented_transforms():
    x = np.random.default_rng(0).random((5, 64)).astype(np.float32)
    np.testing.assert_allclose(shift_images(x, (1, 8, 8), ShiftConfig(kind="invert")), 1 - x)
    noisy = shift_images(x, (1, 8, 8), ShiftConfig(kind="noise", noise_std=0.2))
    assert noisy.min() >= 0 and noisy.max() <= 1 and not np.allclose(noisy, x)
    turned = shift_images(x, (1, 8, 8), ShiftConfig(kind="rotate", rotate_degrees=90))
    np.testing.assert_allclose(turned.reshape(5, 8, 8), np.rot90(x.reshape(5, 8, 8), axes=(1, 2)), atol=1e-5)


@pytest.fixture(scope="module")
def transfer_run(flow_run):
    cfg, _ = flow_run  # the session's small pipeline flow run (tests/conftest.py), with 2 adaptation epochs
    return cfg, transfer_flow(cfg.model_dump(mode="json"))


def test_transfer_flow_runs_three_approaches_in_one_parent_run(transfer_run):
    _, result = transfer_run
    assert set(result.accuracy) == {"frozen", "adapted", "scratch", "raw inputs"}
    assert all(set(s) == {"10", "100", "all"} for s in result.accuracy.values())
    client = mlflow.MlflowClient(result.tracking_uri)
    parent = client.get_run(result.transfer_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["latent.kind"] == "transfer"
    for key in ("mmd_before", "mmd_after", "frechet_before", "frechet_after", "accuracy_adapted_all"):
        assert key in parent.data.metrics
    assert parent.data.metrics["mmd_before"] > 0.01  # inverted digits are a real shift for the source model
    children = client.search_runs([result.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    kinds = sorted(r.info.run_name.split(" · ")[0] for r in children)  # "adapt · digits · vae_mlp"
    assert kinds.count("adapt") == 1 and kinds.count("scratch") == 1 and kinds.count("encode") == 5
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "transfer")}
    assert {"transfer/transfer_accuracy.png", "transfer/transfer.html"} <= artifacts


def test_the_adapted_model_starts_from_the_source_weights(transfer_run):
    from latent.models.io import load_logged_model

    cfg, result = transfer_run
    client = mlflow.MlflowClient(result.tracking_uri)
    (adapt,) = client.search_runs([result.experiment_id], "attributes.run_name LIKE 'adapt ·%'")
    assert adapt.data.tags["latent.init_model_uri"] == result.source.model_uri
    from latent.tracking import setup_tracking
    from latent.train import train
    from latent.transfer import source_model_config

    ws = Workspace.at(cfg.workspace)
    tracking = setup_tracking(cfg.tracking, ws)
    source, model_cfg = source_model_config(result.source.model_uri, tracking.uri)
    still = train(
        result.target_dataset,
        model_cfg,
        cfg.train.model_copy(update={"epochs": 1, "learning_rate": 1e-12}),
        ws,
        tracking,
        init_model_uri=result.source.model_uri,
        run_name="still",
        champion_alias=None,
    )
    tuned = load_logged_model(still.model_uri, tracking.uri)
    for name, value in source.state_dict().items():
        torch.testing.assert_close(tuned.state_dict()[name], value, rtol=0, atol=1e-6)
    frozen = train(
        result.target_dataset,
        model_cfg,
        cfg.train.model_copy(update={"epochs": 1}),
        ws,
        tracking,
        init_model_uri=result.source.model_uri,
        freeze_encoder_layers=1,
        run_name="frozen1",
        champion_alias=None,
    )
    moved = load_logged_model(frozen.model_uri, tracking.uri).state_dict()
    assert torch.equal(moved["encoder.0.weight"], source.state_dict()["encoder.0.weight"])
    assert not torch.equal(moved["encoder.2.weight"], source.state_dict()["encoder.2.weight"])


def test_a_target_of_another_shape_is_refused_naming_both_shapes(transfer_run, tmp_path):
    cfg, _ = transfer_run
    ws = Workspace.at(cfg.workspace)
    other = write_dataset_table(ws, "wide", np.random.default_rng(0).random((50, 32)), shard_rows=64)
    bad = cfg.model_copy(update={"transfer": cfg.transfer.model_copy(update={"target_dataset": str(other.path)})})
    with pytest.raises(DataError) as err:
        transfer_flow(bad.model_dump(mode="json"))
    message = str(err.value)
    assert "takes inputs of shape (64,) (64 values)" in message and "(32 values)" in message


def test_shifted_dataset_keeps_labels_and_image_shape(transfer_run):
    cfg, result = transfer_run
    ws = Workspace.at(cfg.workspace)
    target = make_shifted_dataset(result.source.dataset_path, ShiftConfig(kind="invert"), ws)
    assert str(target.path) == result.target_dataset
    assert target.rows == 1797 and target.shape == {"channels": 1, "height": 8, "width": 8}
