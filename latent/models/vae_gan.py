"""VAE-GAN (Larsen et al., 2016, "Autoencoding beyond pixels using a learned similarity metric").

Why this GAN: it learns an encoder that is a proper posterior q(z|x), so it fills latent tables exactly like the
VAEs (`z_mean`, `z_logvar`, `recon_error`) and is compared with them on equal terms, while a discriminator
sharpens what the decoder (the generator) produces. A BiGAN/ALI encoder is deterministic and has no likelihood,
so it has neither a posterior variance nor a reconstruction error to report.

Per step: the discriminator learns real vs reconstructed vs prior-sampled rows; then encoder and decoder minimise
the VAE loss plus `adversarial_weight` × the non-saturating generator loss on reconstructions and samples.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from latent.models.registry import register_model
from latent.models.vae import VAE, VAEConfig, VAEOutput, mlp


@dataclass
class VAEGANConfig(VAEConfig):
    disc_hidden_dims: tuple[int, ...] = (256, 128)
    adversarial_weight: float = 1.0
    disc_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.disc_hidden_dims = tuple(int(h) for h in self.disc_hidden_dims)


@register_model("vae_gan", VAEGANConfig)
class VAEGAN(VAE):
    config: VAEGANConfig
    adversarial = True

    def __init__(self, config: VAEGANConfig) -> None:
        super().__init__(config)
        dims = [config.input_dim, *config.disc_hidden_dims]
        self.discriminator = nn.Sequential(mlp(dims), nn.Linear(dims[-1], 1))

    def vae_parameters(self) -> list[nn.Parameter]:
        disc = {id(p) for p in self.discriminator.parameters()}
        return [p for p in self.parameters() if id(p) not in disc]

    def configure_optimizers(self, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
        return [
            torch.optim.AdamW(self.vae_parameters(), lr=lr, weight_decay=weight_decay),
            torch.optim.AdamW(
                self.discriminator.parameters(), lr=lr * self.config.disc_lr_scale, weight_decay=weight_decay
            ),
        ]

    def train_step(self, x, optimizers, clip_norm, autocast=None) -> VAEOutput:
        vae_opt, disc_opt = optimizers
        ctx = autocast or contextlib.nullcontext()
        with ctx:
            out = self(x)
            prior = self.decode(torch.randn_like(out.z_mean))
            real = self.discriminator(x)
            fake = self.discriminator(torch.cat([out.recon.detach(), prior.detach()]))
            d_loss = F.binary_cross_entropy_with_logits(
                real, torch.ones_like(real)
            ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        disc_opt.zero_grad(set_to_none=True)
        if torch.isfinite(d_loss.detach()):
            d_loss.backward()
            if clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.discriminator.parameters(), clip_norm, foreach=True)
            disc_opt.step()
        with ctx:
            judged = self.discriminator(torch.cat([out.recon, prior]))
            g_loss = F.binary_cross_entropy_with_logits(judged, torch.ones_like(judged))
            total = out.loss + self.config.adversarial_weight * g_loss
        vae_opt.zero_grad(set_to_none=True)
        out.finite = bool(torch.isfinite(total.detach()))
        if out.finite:
            total.backward()
            if clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.vae_parameters(), clip_norm, foreach=True)
            vae_opt.step()
        out.loss = total
        out.terms = {**out.terms, "d_loss": d_loss.detach(), "g_loss": g_loss.detach()}
        return out
