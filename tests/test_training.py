"""The model family and the trainer: every model learns, resume is exact, NaN stops cleanly, the champion alias
moves only for a better model, diagnostics are logged."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from latent.config import load_config
from latent.data import load_dataset_arrays
from latent.errors import TrainingError
from latent.models import VAE, VAEConfig, available_models, create_model, register_model
from latent.models.beta_tcvae import decomposed_kl
from latent.progress import set_reporter
from latent.tracking import setup_tracking
from latent.train import train
from latent.workspace import Workspace
from tests.helpers import ROOT, Interrupt, small_config

pytestmark = pytest.mark.integration


@dataclass
class NanAfterConfig(VAEConfig):
    nan_from: float = 0.5  # share of training after which the loss turns NaN


@register_model("test_nan_after", NanAfterConfig)
class NanAfter(VAE):
    """A VAE whose loss becomes NaN part-way through training: a real model run by the real trainer."""

    def forward(self, x):
        out = super().forward(x)
        if self.training and self.control.progress >= self.config.nan_from:
            out.loss = out.loss * float("nan")
        return out


@pytest.fixture(scope="module")
def digits(library_run):
    _, x, _ = load_dataset_arrays(library_run.preprocess.dataset_path, ("train",))
    return torch.from_numpy(x[:512])


MODELS = {
    "vae_mlp": {},
    "beta_vae_annealed": {"capacity_max": 5.0, "gamma": 10.0},
    "beta_tcvae": {"beta": 4.0},
    "vae_conv": {"input_shape": (1, 8, 8), "channels": (16, 32), "hidden_dims": (64,)},
    "vae_gan": {"disc_hidden_dims": (64,)},
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_model_learns_on_cpu(name, digits):
    assert name in available_models()
    torch.manual_seed(0)
    model = create_model(name, input_dim=64, latent_dim=4, **MODELS[name])
    model.control.dataset_size = len(digits)
    optimizers = model.configure_optimizers(2e-3, 0.0)
    recon = []
    for epoch in range(15):
        model.control.progress = epoch / 15
        for start in range(0, len(digits), 64):
            out = model.train_step(digits[start : start + 64], optimizers, 10.0)
        recon.append(float(out.recon_loss.detach()))
        assert math.isfinite(float(out.loss.detach()))
    assert recon[-1] < 0.85 * recon[0], recon
    assert out.z_mean.shape == out.z_logvar.shape == (digits[-64:].shape[0], 4)


def test_beta_tcvae_decomposition_sums_to_the_estimated_kl():
    torch.manual_seed(0)
    mean, logvar = torch.randn(64, 3), torch.randn(64, 3) * 0.1
    z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
    mi, tc, dwkl = decomposed_kl(z, mean, logvar, dataset_size=64)
    log_q = -0.5 * (math.log(2 * math.pi) + logvar + (z - mean) ** 2 / logvar.exp()).sum(1)
    log_p = -0.5 * (math.log(2 * math.pi) + z**2).sum(1)
    assert float(mi + tc + dwkl) == pytest.approx(float((log_q - log_p).mean()), rel=1e-4)
    independent = torch.randn(512, 2)
    _, tc_indep, _ = decomposed_kl(independent, independent, torch.full_like(independent, -4.0), 512)
    dependent = torch.randn(512, 1).repeat(1, 2)
    _, tc_dep, _ = decomposed_kl(dependent, dependent, torch.full_like(dependent, -4.0), 512)
    assert float(tc_dep) > float(tc_indep) + 1.0


def test_free_bits_and_warmup_shape_the_kl_term():
    model = create_model("vae_mlp", input_dim=6, latent_dim=3, hidden_dims=(8,))
    kl_per_dim = torch.tensor([0.1, 2.0, 0.0])
    assert float(model.regulariser(None, None, None, kl_per_dim)[0]) == pytest.approx(2.1)
    model.control.free_bits = 0.5
    assert float(model.regulariser(None, None, None, kl_per_dim)[0]) == pytest.approx(3.0)
    model.control.kl_scale = 0.25
    assert float(model.regulariser(None, None, None, kl_per_dim)[0]) == pytest.approx(0.75)


def test_resume_continues_at_the_right_epoch_with_identical_results(library_run, tmp_path):
    dataset = library_run.preprocess.dataset_path
    results = {}
    for name in ("straight", "interrupted"):
        cfg = small_config(tmp_path / name, "train.epochs=6", "train.schedule=cosine", "train.kl_warmup_epochs=2")
        ws = Workspace.at(cfg.workspace)
        tracking = setup_tracking(cfg.tracking, ws)
        if name == "interrupted":
            set_reporter(Interrupt(after_epoch=3))
            try:
                with pytest.raises(KeyboardInterrupt):
                    train(dataset, cfg.model, cfg.train, ws, tracking)
            finally:
                set_reporter(None)
            killed = mlflow.MlflowClient(tracking.uri).search_runs([tracking.experiment_id])
            assert [r.info.status for r in killed] == ["KILLED"]
        result = train(dataset, cfg.model, cfg.train, ws, tracking)
        results[name] = (result, tracking)
    straight, interrupted = results["straight"][0], results["interrupted"][0]
    assert straight.resumed_from_epoch == 0 and interrupted.resumed_from_epoch == 3
    a = torch.load(f"{straight.checkpoint_dir}/weights.pt", weights_only=True)
    b = torch.load(f"{interrupted.checkpoint_dir}/weights.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert interrupted.best_val_loss == straight.best_val_loss
    client = mlflow.MlflowClient(results["interrupted"][1].uri)
    history = client.get_metric_history(interrupted.run_id, "val_loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5, 6]
    assert client.get_run(interrupted.run_id).info.status == "FINISHED"


def test_resume_flag_without_anything_to_resume_is_an_error(library_run, tmp_path):
    cfg = small_config(tmp_path / "ws")
    ws = Workspace.at(cfg.workspace)
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(
            library_run.preprocess.dataset_path,
            cfg.model,
            cfg.train,
            ws,
            setup_tracking(cfg.tracking, ws),
            resume="require",
        )


def test_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(library_run, tmp_path):
    cfg = small_config(tmp_path / "ws", "model.name=test_nan_after", "model.params={nan_from: 0.5}", "train.epochs=4")
    ws = Workspace.at(cfg.workspace)
    tracking = setup_tracking(cfg.tracking, ws)
    with pytest.raises(TrainingError, match=r"non-finite loss .* at epoch 3"):
        train(library_run.preprocess.dataset_path, cfg.model, cfg.train, ws, tracking)
    (run,) = mlflow.MlflowClient(tracking.uri).search_runs([tracking.experiment_id])
    assert run.info.status == "FAILED"
    assert "non-finite loss" in run.data.tags["latent.error"]
    last = torch.load(ws.model_dir(run.info.run_id) / "last.pt", weights_only=True)
    assert last["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in last["model"].values())


def test_champion_alias_moves_only_for_a_better_model(library_run, tmp_path):
    dataset = library_run.preprocess.dataset_path
    ws = Workspace.at(tmp_path / "ws")
    outcomes = []
    for epochs in (4, 1, 12):
        cfg = small_config(ws.root, f"train.epochs={epochs}")
        tracking = setup_tracking(cfg.tracking, ws)
        result = train(dataset, cfg.model, cfg.train, ws, tracking, "digits-alias", champion_alias="champion")
        outcomes.append((result.registered_version, result.champion, result.best_val_loss))
    assert [c for _, c, _ in outcomes] == [True, False, True]
    assert outcomes[2][2] < outcomes[0][2] < outcomes[1][2]
    client = mlflow.MlflowClient(tracking.uri)
    assert str(client.get_model_version_by_alias("digits-alias", "champion").version) == outcomes[2][0]


def test_diagnostics_early_stopping_and_collapse_warning(library_run, tmp_path):
    cfg = small_config(
        tmp_path / "ws",
        "train.epochs=10",
        "train.learning_rate=1e-12",
        "train.early_stopping_patience=2",
        "train.collapse_min_active_units=9",
    )
    ws = Workspace.at(cfg.workspace)
    tracking = setup_tracking(cfg.tracking, ws)
    result = train(library_run.preprocess.dataset_path, cfg.model, cfg.train, ws, tracking)
    client = mlflow.MlflowClient(tracking.uri)
    run = client.get_run(result.run_id)
    stopped = int(run.data.tags["latent.early_stopped_at_epoch"])
    assert 3 <= stopped < 10
    assert "active latent units" in run.data.tags["latent.warning.posterior_collapse"]
    assert {f"val_kl_dim_{i}" for i in range(8)} <= set(run.data.metrics)
    assert len(client.get_metric_history(result.run_id, "val_loss")) == stopped


def test_gan_logs_adversarial_terms_and_sample_diversity(library_run, tmp_path):
    cfg = small_config(tmp_path / "ws", "model.name=vae_gan", "train.epochs=2", "tracking.registered_model=null")
    ws = Workspace.at(cfg.workspace)
    tracking = setup_tracking(cfg.tracking, ws)
    result = train(library_run.preprocess.dataset_path, cfg.model, cfg.train, ws, tracking)
    metrics = mlflow.MlflowClient(tracking.uri).get_run(result.run_id).data.metrics
    assert {"train_d_loss", "train_g_loss", "sample_diversity"} <= set(metrics)
    assert metrics["sample_diversity"] > 0


def test_conv_model_trains_through_the_pipeline_and_its_pyfunc_encodes(library_run, tmp_path):
    from latent.tracking import use_tracking_uri

    cfg = small_config(
        tmp_path / "ws",
        "model.name=vae_conv",
        "model.hidden_dims=[64]",
        "model.params={channels: [8, 16]}",
        "train.epochs=2",
        "tracking.registered_model=null",
    )
    ws = Workspace.at(cfg.workspace)
    tracking = setup_tracking(cfg.tracking, ws)
    result = train(library_run.preprocess.dataset_path, cfg.model, cfg.train, ws, tracking)
    use_tracking_uri(tracking.uri)
    _, x, _ = load_dataset_arrays(library_run.preprocess.dataset_path, ("test",))
    from latent.models.io import load_logged_model

    model = load_logged_model(result.model_uri, tracking.uri)
    with torch.no_grad():
        expected = model.encode(torch.from_numpy(x[:16]))[0].numpy()
    predicted = np.asarray(mlflow.pyfunc.load_model(result.model_uri).predict(x[:16]))
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("preset", sorted(p.name for p in (ROOT / "conf").glob("digits-*.yaml")))
def test_presets_build_their_model_for_digits_and_take_a_step(preset, library_run, digits):
    from latent.data import read_dataset_info
    from latent.train import build_model

    cfg = load_config(ROOT / "conf" / preset)
    model = build_model(cfg.model, read_dataset_info(library_run.preprocess.dataset_path))
    model.control.dataset_size = 1000
    out = model.train_step(digits[:64], model.configure_optimizers(1e-3, 0.0), cfg.train.grad_clip_norm)
    assert out.finite and out.z_mean.shape == (64, cfg.model.latent_dim)


def test_a_preset_extends_the_default_and_can_be_overridden(tmp_path):
    cfg = load_config(ROOT / "conf" / "digits-betatcvae.yaml", ["model.beta=2"])
    assert cfg.model.name == "beta_tcvae" and cfg.model.beta == 2.0
    assert cfg.report == load_config(ROOT / "conf" / "default.yaml").report
    loop = tmp_path / "a.yaml"
    loop.write_text("extends: a.yaml\n")
    with pytest.raises(Exception, match="extends itself"):
        load_config(loop)


def test_the_full_grid_conv_betatcvae_preset_builds_and_takes_a_step():
    from latent.data.dataset import DatasetInfo
    from latent.train import build_model

    cfg = load_config(ROOT / "conf" / "shapes-conv-betatcvae.yaml")
    assert cfg.dataset.shapes.n_samples is None and cfg.train.batch_size == 64 and cfg.model.latent_dim == 10
    info = DatasetInfo(Path("shapes"), "v", 16, {"train": 16}, "", 64 * 64, {"channels": 1, "height": 64, "width": 64})
    model = build_model(cfg.model, info)
    model.control.dataset_size = 737_280
    x = (torch.rand(16, 64 * 64) > 0.8).float()
    out = model.train_step(x, model.configure_optimizers(1e-3, 0.0), cfg.train.grad_clip_norm)
    assert out.finite and out.z_mean.shape == (16, 10) and {"mi", "tc", "dwkl"} <= set(out.terms)
