"""The training failures watched per epoch: vanishing gradients (first vs last layer norm) and overfitting (a
generalisation gap that keeps growing while the train loss falls). Real models through the real trainer."""

from __future__ import annotations

import mlflow
import pytest
import torch
from torch import nn

from latent.data import ingest, preprocess
from latent.models import VAE, VAEConfig, register_model
from latent.tracking import setup_tracking
from latent.train import OVERFIT_WINDOW, VANISHING_RATIO, overfitting_warning, train
from latent.workspace import Workspace
from tests.helpers import small_config

pytestmark = pytest.mark.integration


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


@register_model("test_starved_first_layer", VAEConfig)
class StarvedFirstLayer(VAE):
    """A VAE whose first encoder layer's output is scaled by 1e-5 (and the next layer's weights up to match the
    signal), so almost no gradient reaches the first layer: the textbook vanishing-gradient case."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        first, *rest = list(self.encoder)
        self.encoder = nn.Sequential(first, _Scale(1e-5), *rest)


def _train(workspace, dataset, *extra):
    cfg = small_config(workspace, "tracking.registered_model=null", *extra)
    ws = Workspace.at(cfg.workspace)
    tracking = setup_tracking(cfg.tracking, ws)
    result = train(dataset, cfg.model, cfg.train, ws, tracking)
    client = mlflow.MlflowClient(tracking.uri)
    return result, client.get_run(result.run_id), client


def test_gradient_norms_are_logged_per_part_every_epoch(library_run):
    client = mlflow.MlflowClient(library_run.tracking.uri)
    for key in ("grad_norm_encoder", "grad_norm_decoder", "grad_ratio_first_last", "generalisation_gap"):
        history = client.get_metric_history(library_run.train.run_id, key)
        assert [m.step for m in history] == list(range(1, 5)), key
        assert all(m.value == m.value for m in history), key  # not NaN


def test_a_model_that_starves_its_first_layer_sets_the_vanishing_gradient_tag(library_run, tmp_path):
    _, run, _ = _train(
        tmp_path / "ws", library_run.preprocess.dataset_path, "model.name=test_starved_first_layer", "train.epochs=2"
    )
    ratio = run.data.metrics["grad_ratio_first_last"]
    print(f"starved first layer: gradient norm ratio first/last {ratio:.2e} (threshold {VANISHING_RATIO:g})")
    assert ratio < VANISHING_RATIO
    assert "latent.warning.vanishing_gradients" in run.data.tags


@pytest.fixture(scope="module")
def default_digits_run(library_run, tmp_path_factory):
    return _train(tmp_path_factory.mktemp("default") / "ws", library_run.preprocess.dataset_path, "train.epochs=20")


def test_the_default_digits_run_sets_neither_warning(default_digits_run):
    _, run, _ = default_digits_run
    print(f"default digits: gradient norm ratio first/last {run.data.metrics['grad_ratio_first_last']:.2e}")
    assert "latent.warning.vanishing_gradients" not in run.data.tags
    assert "latent.warning.overfitting" not in run.data.tags


def test_a_tiny_train_split_trained_long_sets_the_overfitting_tag(tmp_path):
    cfg = small_config(tmp_path / "ws", "preprocess.split.val=0.45", "preprocess.split.test=0.5")
    ws = Workspace.at(cfg.workspace)
    ing = ingest(cfg.dataset, ws)
    pre = preprocess(ing.raw_path, ing.fingerprint, cfg.preprocess, cfg.dask, ws)
    result, run, client = _train(
        tmp_path / "ws",
        pre.dataset_path,
        "preprocess.split.val=0.45",
        "preprocess.split.test=0.5",
        "train.epochs=120",  # 90 train rows, a wide model: it memorises them
        "train.batch_size=16",
        "train.learning_rate=0.003",
        "model.hidden_dims=[512,512]",
        "model.latent_dim=32",
    )
    gap = client.get_metric_history(result.run_id, "generalisation_gap")
    print("generalisation gap by epoch:", " ".join(f"{m.value:.3f}" for m in sorted(gap, key=lambda m: m.step)))
    assert "latent.warning.overfitting" in run.data.tags, run.data.tags


def test_the_overfitting_rule_needs_a_growing_gap_and_a_falling_train_loss():
    falling = [100.0 - i for i in range(OVERFIT_WINDOW)]
    growing = [0.01 * i for i in range(OVERFIT_WINDOW)]
    assert overfitting_warning(falling, growing)
    assert not overfitting_warning(falling, growing[::-1])  # gap shrinking
    assert not overfitting_warning(falling[::-1], growing)  # train loss rising: underfitting, not overfitting
    assert not overfitting_warning(falling[:-1], growing[:-1])  # too few epochs to tell
