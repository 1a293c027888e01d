"""β-TCVAE (Chen et al., 2018, "Isolating sources of disentanglement in VAEs").

The KL term is split into index-code mutual information, total correlation (TC) and dimension-wise KL, each with
its own weight; q(z) and its marginals are estimated with minibatch-weighted sampling (their eq. S6):
log q(z_i) ≈ logsumexp_j log q(z_i | x_j) − log(N·M), for a batch of M rows from a dataset of N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from latent.models.conv_vae import ConvVAE, ConvVAEConfig
from latent.models.registry import register_model
from latent.models.vae import VAE, VAEConfig

_LOG_2PI = math.log(2 * math.pi)


@dataclass
class BetaTCVAEConfig(VAEConfig):
    alpha: float = 1.0  # mutual information
    beta: float = 6.0  # total correlation
    gamma: float = 1.0  # dimension-wise KL


def _log_normal(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (_LOG_2PI + logvar + (z - mean) ** 2 * torch.exp(-logvar))


def decomposed_kl(
    z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, dataset_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mutual information, total correlation, dimension-wise KL), batch means, by minibatch-weighted sampling."""
    m = z.shape[0]
    n = max(dataset_size, m)
    log_qz_given_x = _log_normal(z, mean, logvar).sum(1)
    log_pz = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)
    pairwise = _log_normal(z.unsqueeze(1), mean.unsqueeze(0), logvar.unsqueeze(0))  # (i, j, d): log q(z_i,d | x_j)
    norm = math.log(n * m)
    log_qz = torch.logsumexp(pairwise.sum(2), dim=1) - norm
    log_prod_qz = (torch.logsumexp(pairwise, dim=1) - norm).sum(1)
    mi = (log_qz_given_x - log_qz).mean()
    tc = (log_qz - log_prod_qz).mean()
    dwkl = (log_prod_qz - log_pz).mean()
    return mi, tc, dwkl


@register_model("beta_tcvae", BetaTCVAEConfig)
class BetaTCVAE(VAE):
    config: BetaTCVAEConfig

    def regulariser(self, z, mean, logvar, kl_per_dim) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        mi, tc, dwkl = decomposed_kl(z, mean, logvar, self.control.dataset_size)
        reg = c.alpha * mi + c.beta * tc + c.gamma * dwkl
        return self.control.kl_scale * reg, {"mi": mi, "tc": tc, "dwkl": dwkl}


@dataclass
class ConvBetaTCVAEConfig(ConvVAEConfig):
    alpha: float = 1.0
    beta: float = 6.0
    gamma: float = 1.0


@register_model("beta_tcvae_conv", ConvBetaTCVAEConfig)
class ConvBetaTCVAE(ConvVAE):
    """β-TCVAE's regulariser over the convolutional encoder and decoder (images)."""

    config: ConvBetaTCVAEConfig
    regulariser = BetaTCVAE.regulariser
