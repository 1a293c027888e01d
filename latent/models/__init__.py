"""Models, built by name from a registry; each returns a named output with its loss terms.

Registered: `vae_mlp` (VAE / β-VAE), `vae_conv` (convolutional VAE), `beta_vae_annealed` (β-VAE with capacity
annealing), `beta_tcvae` (β-TCVAE), `vae_gan` (VAE-GAN), `prodlda` (ProdLDA topic model over word counts),
`selfies_vae` (sequence VAE over SELFIES tokens).
"""

from latent.models import beta_tcvae, beta_vae, conv_vae, prodlda, selfies_vae, vae_gan  # noqa: F401  (registers)
from latent.models.registry import available_models, create_model, model_entry, register_model
from latent.models.vae import VAE, BaseVAE, LatentMeanEncoder, LossControl, VAEConfig, VAEOutput

__all__ = [
    "VAE",
    "BaseVAE",
    "LatentMeanEncoder",
    "LossControl",
    "VAEConfig",
    "VAEOutput",
    "available_models",
    "create_model",
    "model_entry",
    "register_model",
]
