import pickle

import pytest
import torch

from latent.errors import ConfigError, DataError
from latent.models import VAE, available_models, create_model
from latent.models.io import load_model_files, save_model_files

pytestmark = pytest.mark.unit


def test_registry_builds_models_by_name():
    assert "vae_mlp" in available_models()
    model = create_model("vae_mlp", input_dim=64, latent_dim=3, hidden_dims=(16,))
    assert isinstance(model, VAE) and model.config.latent_dim == 3


def test_registry_refuses_unknown_names_and_parameters():
    with pytest.raises(ConfigError, match="unknown model 'gan9000'"):
        create_model("gan9000", input_dim=4)
    with pytest.raises(ConfigError, match="has no parameter"):
        create_model("vae_mlp", input_dim=4, depth=3)


def test_forward_returns_named_loss_terms():
    torch.manual_seed(0)
    model = create_model("vae_mlp", input_dim=10, latent_dim=4, hidden_dims=(8,), beta=2.0)
    out = model(torch.rand(5, 10))
    assert out.z_mean.shape == out.z_logvar.shape == out.z.shape == (5, 4)
    assert out.recon.shape == (5, 10)
    assert out.kl_per_dim.shape == (4,)
    assert torch.allclose(out.kl, out.kl_per_dim.sum())
    assert torch.allclose(out.loss, out.recon_loss + 2.0 * out.kl)


def test_loss_falls_when_training_a_few_steps():
    torch.manual_seed(0)
    prototypes = (torch.rand(4, 20) > 0.5).float()
    x = prototypes[torch.randint(0, 4, (256,))]
    model = create_model("vae_mlp", input_dim=20, latent_dim=4, hidden_dims=(32,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        out = model(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_eval_mode_is_deterministic_posterior_mean():
    model = create_model("vae_mlp", input_dim=6, latent_dim=2, hidden_dims=(8,)).eval()
    x = torch.rand(4, 6)
    a, b = model(x), model(x)
    assert torch.equal(a.z, a.z_mean) and torch.equal(a.recon, b.recon)


def test_save_and_load_round_trip(tmp_path):
    model = create_model("vae_mlp", input_dim=6, latent_dim=2, hidden_dims=(8,)).eval()
    save_model_files(model, tmp_path)
    loaded = load_model_files(tmp_path)
    x = torch.rand(3, 6)
    assert torch.equal(model.encode(x)[0], loaded.encode(x)[0])


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_weights_are_loaded_without_unpickling_code(tmp_path):
    model = create_model("vae_mlp", input_dim=6, latent_dim=2, hidden_dims=(8,))
    save_model_files(model, tmp_path)
    (tmp_path / "weights.pt").write_bytes(pickle.dumps({"x": _Payload()}))
    with pytest.raises(DataError, match="cannot load weights"):
        load_model_files(tmp_path)
