"""β-VAE with controlled capacity increase (Burgess et al., 2018, "Understanding disentangling in β-VAE").

The KL term is pulled towards a target capacity C that grows linearly from 0 to `capacity_max` nats over the first
`capacity_fraction` of training: loss = recon + γ · |KL − C|. (The plain β-VAE is `vae_mlp` with `beta`.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from latent.models.registry import register_model
from latent.models.vae import VAE, VAEConfig


@dataclass
class AnnealedVAEConfig(VAEConfig):
    capacity_max: float = 25.0  # nats
    gamma: float = 100.0
    capacity_fraction: float = 1.0  # share of training over which C rises to capacity_max

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.capacity_fraction <= 1:
            raise ValueError(f"capacity_fraction must be in (0, 1], got {self.capacity_fraction}")


@register_model("beta_vae_annealed", AnnealedVAEConfig)
class AnnealedVAE(VAE):
    config: AnnealedVAEConfig

    def regulariser(self, z, mean, logvar, kl_per_dim) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        capacity = c.capacity_max * min(1.0, self.control.progress / c.capacity_fraction)
        kl = kl_per_dim.sum()
        capacity_t = torch.tensor(capacity, dtype=kl.dtype, device=kl.device)
        return self.control.kl_scale * c.gamma * (kl - capacity_t).abs(), {"capacity": capacity_t}
