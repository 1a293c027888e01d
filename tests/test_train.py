import mlflow
import numpy as np
import pytest
import torch

from latent.data import load_dataset_arrays
from latent.models.io import load_logged_model
from latent.tracking import use_tracking_uri

pytestmark = pytest.mark.integration


def test_training_logs_every_epoch(library_run):
    client = mlflow.MlflowClient(library_run.tracking.uri)
    run = client.get_run(library_run.train.run_id)
    assert run.info.status == "FINISHED"
    epochs = library_run.cfg.train.epochs
    for key in ("train_loss", "train_recon", "train_kl", "val_loss", "val_recon", "val_kl", "val_active_units"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(1, epochs + 1)), key
    losses = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "train_loss"), key=lambda m: m.step)]
    assert losses[-1] < losses[0]
    assert run.data.params["model.latent_dim"] == "8"
    assert run.data.tags["latent.dataset_version"] == library_run.preprocess.dataset_version


def test_checkpoints_are_written_and_load_with_weights_only(library_run):
    ckpt = torch.load(f"{library_run.train.checkpoint_dir}/last.pt", weights_only=True)
    assert ckpt["epoch"] == library_run.cfg.train.epochs
    assert {"model", "optimizers", "schedulers", "rng", "best_val_loss", "stale_epochs"} <= set(ckpt)
    assert torch.load(f"{library_run.train.checkpoint_dir}/best.pt", weights_only=True)["epoch"] >= 1


def test_logged_model_predicts_latent_means_through_pyfunc(library_run):
    use_tracking_uri(library_run.tracking.uri)
    _, x, _ = load_dataset_arrays(library_run.preprocess.dataset_path, ("test",))
    pyfunc = mlflow.pyfunc.load_model(library_run.train.model_uri)
    predicted = np.asarray(pyfunc.predict(x[:32]))
    model = load_logged_model(library_run.train.model_uri, library_run.tracking.uri)
    with torch.no_grad():
        expected = model.encode(torch.from_numpy(x[:32]))[0].numpy()
    assert predicted.shape == (32, 8)
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-5)
    info = mlflow.models.get_model_info(library_run.train.model_uri)
    assert info.signature is not None and info.saved_input_example_info is not None


def test_model_is_registered(library_run):
    client = mlflow.MlflowClient(library_run.tracking.uri)
    versions = client.search_model_versions(f"name='{library_run.cfg.tracking.registered_model}'")
    assert library_run.train.registered_version in {str(v.version) for v in versions}
