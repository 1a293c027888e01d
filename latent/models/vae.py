"""The variational autoencoder with MLP encoder and decoder (Kingma & Welling, 2014), with a β weight."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from latent.models.registry import register_model


@dataclass
class VAEConfig:
    input_dim: int
    latent_dim: int = 8
    hidden_dims: tuple[int, ...] = (256, 128)
    likelihood: str = "bernoulli"  # "bernoulli" for data in [0, 1], "gaussian" for standardised features
    beta: float = 1.0

    def __post_init__(self) -> None:
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")


@dataclass
class VAEOutput:
    """Everything a training step, a logger or a test needs from one forward pass."""

    loss: torch.Tensor  # mean over the batch of reconstruction + beta * KL
    recon_loss: torch.Tensor  # mean over the batch of -log p(x|z), summed over features
    kl: torch.Tensor  # mean over the batch of KL(q(z|x) || N(0, I)), summed over latent dims
    kl_per_dim: torch.Tensor  # (latent_dim,) mean over the batch
    z: torch.Tensor
    z_mean: torch.Tensor
    z_logvar: torch.Tensor
    recon: torch.Tensor  # decoded mean in data space


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(dims):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers)


@register_model("vae_mlp", VAEConfig)
class VAE(nn.Module):
    registry_name = "vae_mlp"

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        hidden = list(config.hidden_dims)
        self.encoder = _mlp([config.input_dim, *hidden])
        self.to_mean = nn.Linear(hidden[-1], config.latent_dim)
        self.to_logvar = nn.Linear(hidden[-1], config.latent_dim)
        self.decoder = nn.Sequential(
            _mlp([config.latent_dim, *reversed(hidden)]), nn.Linear(hidden[0], config.input_dim)
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_mean(h), self.to_logvar(h).clamp(-30.0, 20.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x|z) in data space."""
        out = self.decode_logits(z)
        return torch.sigmoid(out) if self.config.likelihood == "bernoulli" else out

    def reconstruction_nll(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per row, summed over features."""
        if self.config.likelihood == "bernoulli":
            return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        return 0.5 * ((x - logits) ** 2 + math.log(2 * math.pi)).sum(-1)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        mean, logvar = self.encode(x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if self.training else mean
        logits = self.decode_logits(z)
        recon_loss = self.reconstruction_nll(x, logits).mean()
        kl_per_dim = (0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)).mean(0)
        kl = kl_per_dim.sum()
        recon = torch.sigmoid(logits) if self.config.likelihood == "bernoulli" else logits
        return VAEOutput(
            loss=recon_loss + self.config.beta * kl,
            recon_loss=recon_loss,
            kl=kl,
            kl_per_dim=kl_per_dim,
            z=z,
            z_mean=mean,
            z_logvar=logvar,
            recon=recon,
        )


class LatentMeanEncoder(nn.Module):
    """x -> E[z|x]: the module logged to MLflow, so `pyfunc.load_model(uri).predict(x)` returns latent means."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.to_mean = model.to_mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_mean(self.encoder(x))
