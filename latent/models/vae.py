"""The variational autoencoder family's base: a VAE with MLP encoder and decoder (Kingma & Welling, 2014).

Every model in the family shares `encode`, `decode`, the reconstruction likelihood, and a `forward` that returns a
`VAEOutput` with the loss and its terms; a variant overrides only `regulariser` (and, for adversarial models,
`configure_optimizers` and `train_step`). The trainer steers training-time terms through `model.control`.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass, field

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
    beta: float = 1.0  # weight of the KL term: 1 is the VAE, > 1 the β-VAE of Higgins et al. (2017)

    def __post_init__(self) -> None:
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")


@dataclass
class LossControl:
    """Training-time settings of the loss that change as training goes (set by the trainer)."""

    kl_scale: float = 1.0  # KL warm-up: ramps from 0 to 1 over the first epochs
    free_bits: float = 0.0  # nats per latent dimension below which KL is not penalised (Kingma et al., 2016)
    progress: float = 1.0  # fraction of training done, in [0, 1] (capacity annealing follows it)
    dataset_size: int = 0  # rows in the training set (β-TCVAE's minibatch-weighted sampling needs it)


@dataclass
class VAEOutput:
    """Everything a training step, a logger or a test needs from one forward pass."""

    loss: torch.Tensor  # the training objective, mean over the batch
    recon_loss: torch.Tensor  # mean over the batch of -log p(x|z), summed over features
    kl: torch.Tensor  # mean over the batch of KL(q(z|x) || N(0, I)), summed over latent dims
    kl_per_dim: torch.Tensor  # (latent_dim,) mean over the batch
    z: torch.Tensor
    z_mean: torch.Tensor
    z_logvar: torch.Tensor
    recon: torch.Tensor  # decoded mean in data space
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # model-specific terms (tc, capacity, d_loss...)
    finite: bool = True  # set by train_step: False if the loss was NaN/inf and no update was applied


def mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(dims):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers)


class BaseVAE(nn.Module):
    """Shared machinery; subclasses build `encoder` (x -> features of width `feature_dim`) and `decoder`."""

    registry_name = "base"
    config: VAEConfig

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.control = LossControl()

    def _heads(self, feature_dim: int) -> None:
        self.to_mean = nn.Linear(feature_dim, self.config.latent_dim)
        self.to_logvar = nn.Linear(feature_dim, self.config.latent_dim)

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

    def regulariser(
        self, z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, kl_per_dim: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """β · KL, with free bits per dimension and the warm-up scale."""
        kl = kl_per_dim.clamp(min=self.control.free_bits).sum() if self.control.free_bits > 0 else kl_per_dim.sum()
        return self.control.kl_scale * self.config.beta * kl, {}

    def forward(self, x: torch.Tensor) -> VAEOutput:
        mean, logvar = self.encode(x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if self.training else mean
        logits = self.decode_logits(z)
        recon_loss = self.reconstruction_nll(x, logits).mean()
        kl_per_dim = (0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)).mean(0)
        reg, terms = self.regulariser(z, mean, logvar, kl_per_dim)
        recon = torch.sigmoid(logits) if self.config.likelihood == "bernoulli" else logits
        return VAEOutput(
            loss=recon_loss + reg,
            recon_loss=recon_loss,
            kl=kl_per_dim.sum(),
            kl_per_dim=kl_per_dim,
            z=z,
            z_mean=mean,
            z_logvar=logvar,
            recon=recon,
            terms=terms,
        )

    # ---- training hooks: one optimizer by default; adversarial models override both ----

    def configure_optimizers(self, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=weight_decay)]

    def train_step(
        self,
        x: torch.Tensor,
        optimizers: list[torch.optim.Optimizer],
        clip_norm: float,
        autocast: contextlib.AbstractContextManager | None = None,
    ) -> VAEOutput:
        (optimizer,) = optimizers
        with autocast or contextlib.nullcontext():
            out = self(x)
        optimizer.zero_grad(set_to_none=True)
        out.finite = bool(torch.isfinite(out.loss.detach()))
        if out.finite:
            out.loss.backward()
            if clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.parameters(), clip_norm, foreach=True)
            optimizer.step()
        return out


@register_model("vae_mlp", VAEConfig)
class VAE(BaseVAE):
    """VAE with MLP encoder and decoder; with beta != 1 it is the β-VAE of Higgins et al. (2017)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        hidden = list(config.hidden_dims)
        self.encoder = mlp([config.input_dim, *hidden])
        self._heads(hidden[-1])
        self.decoder = nn.Sequential(
            mlp([config.latent_dim, *reversed(hidden)]), nn.Linear(hidden[0], config.input_dim)
        )


class LatentMeanEncoder(nn.Module):
    """x -> E[z|x]: the module logged to MLflow, so `pyfunc.load_model(uri).predict(x)` returns latent means."""

    def __init__(self, model: BaseVAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x)[0]
