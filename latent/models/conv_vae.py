"""VAE with convolutional encoder and decoder, for images (8×8 digits, 28×28, 32×32, 64×64, ...).

Rows stay flat (n, C·H·W) in tables; the model reshapes. Each stride-2 convolution halves the image; the decoder
mirrors the encoder with transposed convolutions, so H and W must be divisible by 2^len(channels).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

from latent.models.registry import register_model
from latent.models.vae import BaseVAE, VAEConfig


@dataclass
class ConvVAEConfig(VAEConfig):
    input_shape: tuple[int, int, int] = (1, 28, 28)  # channels, height, width
    channels: tuple[int, ...] = (32, 64)
    hidden_dims: tuple[int, ...] = (256,)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.input_shape = tuple(int(v) for v in self.input_shape)
        self.channels = tuple(int(v) for v in self.channels)
        c, h, w = self.input_shape
        if c * h * w != self.input_dim:
            raise ValueError(f"input_shape {self.input_shape} has {c * h * w} values but input_dim is {self.input_dim}")
        factor = 2 ** len(self.channels)
        if h % factor or w % factor:
            raise ValueError(f"image {h}x{w} is not divisible by 2^{len(self.channels)} (one halving per conv layer)")


@register_model("vae_conv", ConvVAEConfig)
class ConvVAE(BaseVAE):
    config: ConvVAEConfig

    def __init__(self, config: ConvVAEConfig) -> None:
        super().__init__(config)
        c, h, w = config.input_shape
        chans = [c, *config.channels]
        convs: list[nn.Module] = []
        for a, b in itertools.pairwise(chans):
            convs += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.SiLU()]
        factor = 2 ** len(config.channels)
        self._grid = (chans[-1], h // factor, w // factor)
        flat = chans[-1] * (h // factor) * (w // factor)
        hidden = config.hidden_dims[0]
        self.encoder = nn.Sequential(
            nn.Unflatten(1, (c, h, w)), *convs, nn.Flatten(), nn.Linear(flat, hidden), nn.SiLU()
        )
        self._heads(hidden)
        deconvs: list[nn.Module] = []
        rev = list(reversed(chans))
        for i, (a, b) in enumerate(itertools.pairwise(rev)):
            deconvs.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
            if i < len(rev) - 2:
                deconvs.append(nn.SiLU())
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim, hidden),
            nn.SiLU(),
            nn.Linear(hidden, flat),
            nn.SiLU(),
            nn.Unflatten(1, self._grid),
            *deconvs,
            nn.Flatten(),
        )

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)
