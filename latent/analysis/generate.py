"""Generation and interpolation in latent space."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def sample_prior(model: torch.nn.Module, n: int, seed: int = 0) -> np.ndarray:
    """Decode n draws from the N(0, I) prior; returns the decoded means in data space."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.config.latent_dim, generator=generator)
    return model.decode(z).numpy()


def interpolate(z0: np.ndarray, z1: np.ndarray, steps: int, slerp: bool = False) -> np.ndarray:
    """Points from z0 to z1 inclusive: linear, or spherical (slerp) which keeps the norm profile smooth."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    z0 = np.asarray(z0, dtype=np.float64)
    z1 = np.asarray(z1, dtype=np.float64)
    if slerp:
        cos = np.dot(z0, z1) / max(np.linalg.norm(z0) * np.linalg.norm(z1), 1e-12)
        omega = np.arccos(np.clip(cos, -1.0, 1.0))
        if omega > 1e-6:
            return (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)
    return (1 - t) * z0 + t * z1
