"""Models, built by name from a registry; each returns a named output with its loss terms."""

from latent.models.registry import available_models, create_model, model_entry, register_model
from latent.models.vae import VAE, LatentMeanEncoder, VAEConfig, VAEOutput

__all__ = [
    "VAE",
    "LatentMeanEncoder",
    "VAEConfig",
    "VAEOutput",
    "available_models",
    "create_model",
    "model_entry",
    "register_model",
]
