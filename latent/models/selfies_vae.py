"""A sequence VAE over SELFIES tokens (after Gómez-Bombarelli et al., 2018, on SELFIES as Krenn et al., 2020
propose): a bidirectional GRU reads a molecule's token indices into q(z|x); a GRU driven by z at every position
writes a categorical distribution over the vocabulary per position.

The decoder sees z only (no previous tokens), so the code must carry the molecule and decoding is one parallel
pass; greedy decoding takes each position's most probable token. Any token sequence is a molecule under SELFIES
(`[nop]`, the padding, is skipped), and the first position is restricted to tokens that began a training molecule
(atoms), so every decoded point — prior samples, interpolations, traversals — is a valid, non-empty molecule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from latent.models.registry import register_model
from latent.models.vae import BaseVAE, VAEConfig, VAEOutput


@dataclass
class SelfiesVAEConfig(VAEConfig):
    hidden_dims: tuple[int, ...] = (128,)  # the GRUs' hidden size (the first entry)
    likelihood: str = "categorical"
    vocab_size: int = 0  # set from the dataset's SELFIES vocabulary (index 0 is the padding)
    embedding_dim: int = 32

    def __post_init__(self) -> None:
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        if self.likelihood != "categorical":
            raise ValueError(f"selfies_vae models tokens: likelihood must be 'categorical', got {self.likelihood!r}")
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2 (the padding and one token), got {self.vocab_size}")


@register_model("selfies_vae", SelfiesVAEConfig)
class SelfiesVAE(BaseVAE):
    config: SelfiesVAEConfig

    def __init__(self, config: SelfiesVAEConfig) -> None:
        super().__init__(config)
        hidden = config.hidden_dims[0]
        self.embed = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.encoder = nn.GRU(config.embedding_dim, hidden, batch_first=True, bidirectional=True)
        self._heads(2 * hidden)
        self.to_hidden = nn.Linear(config.latent_dim, hidden)
        self.decoder = nn.GRU(config.latent_dim, hidden, batch_first=True)
        self.to_tokens = nn.Linear(hidden, config.vocab_size)
        # tokens seen first in a training molecule: the only ones greedy decoding may put first (saved with weights)
        self.register_buffer("first_tokens", torch.zeros(config.vocab_size, dtype=torch.bool))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, h = self.encoder(self.embed(x.long()))
        h = torch.cat([h[0], h[1]], -1)
        return self.to_mean(h), self.to_logvar(h).clamp(-30.0, 20.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """(n, positions, vocabulary) token logits."""
        steps = z.unsqueeze(1).expand(-1, self.config.input_dim, -1).contiguous()
        out, _ = self.decoder(steps, torch.tanh(self.to_hidden(z)).unsqueeze(0).contiguous())
        return self.to_tokens(out)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The most probable token index at each position (as floats, like every model's decoded rows)."""
        logits = self.decode_logits(z)
        if self.first_tokens.any():
            logits[:, 0] = logits[:, 0].masked_fill(~self.first_tokens, float("-inf"))
        return logits.argmax(-1).to(z.dtype)

    def reconstruction_nll(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """−log p(x|z) per molecule: the cross-entropy of every position's token, summed."""
        target = x.long()
        return F.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(-1)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        if self.training:
            self.first_tokens[x[:, 0].long()] = True
        mean, logvar = self.encode(x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if self.training else mean
        logits = self.decode_logits(z)
        recon_loss = self.reconstruction_nll(x, logits).mean()
        kl_per_dim = (0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)).mean(0)
        reg, terms = self.regulariser(z, mean, logvar, kl_per_dim)
        return VAEOutput(
            loss=recon_loss + reg,
            recon_loss=recon_loss,
            kl=kl_per_dim.sum(),
            kl_per_dim=kl_per_dim,
            z=z,
            z_mean=mean,
            z_logvar=logvar,
            recon=logits.argmax(-1).to(x.dtype),
            terms=terms,
        )
