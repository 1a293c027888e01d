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
    hidden_dims: tuple[int, ...] = (64,)  # the GRUs' hidden size (the first entry)
    likelihood: str = "categorical"
    vocab_size: int = 0  # set from the dataset's SELFIES vocabulary (index 0 is the padding)
    embedding_dim: int = 16

    def __post_init__(self) -> None:
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        if self.likelihood != "categorical":
            raise ValueError(f"selfies_vae models tokens: likelihood must be 'categorical', got {self.likelihood!r}")
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2 (the padding and one token), got {self.vocab_size}")


class _TokenEncoder(nn.Module):
    """Token indices -> the final states of a bidirectional GRU over their embeddings, concatenated."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_dim)
        self.gru = nn.GRU(embedding_dim, hidden, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(self.embed(x.long()))
        return torch.cat([h[0], h[1]], -1)


class _TokenDecoder(nn.Module):
    """z -> (n, positions, vocabulary) logits: a GRU started from and driven by z at every position."""

    def __init__(self, latent_dim: int, hidden: int, vocab_size: int, positions: int) -> None:
        super().__init__()
        self.positions = positions
        self.to_hidden = nn.Linear(latent_dim, hidden)
        self.gru = nn.GRU(latent_dim, hidden, batch_first=True)
        self.to_tokens = nn.Linear(hidden, vocab_size)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        steps = z.unsqueeze(1).expand(-1, self.positions, -1).contiguous()
        out, _ = self.gru(steps, torch.tanh(self.to_hidden(z)).unsqueeze(0).contiguous())
        return self.to_tokens(out)


@register_model("selfies_vae", SelfiesVAEConfig)
class SelfiesVAE(BaseVAE):
    config: SelfiesVAEConfig

    def __init__(self, config: SelfiesVAEConfig) -> None:
        super().__init__(config)
        hidden = config.hidden_dims[0]
        self.encoder = _TokenEncoder(config.vocab_size, config.embedding_dim, hidden)
        self._heads(2 * hidden)
        self.decoder = _TokenDecoder(config.latent_dim, hidden, config.vocab_size, config.input_dim)
        # tokens seen first in a training molecule: the only ones greedy decoding may put first (saved with weights)
        self.register_buffer("first_tokens", torch.zeros(config.vocab_size, dtype=torch.bool))

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
