"""A sequence VAE over SELFIES tokens (after Gómez-Bombarelli et al., 2018, on SELFIES as Krenn et al., 2020
propose): a bidirectional GRU reads a molecule's token indices into q(z|x); an autoregressive GRU writes the
molecule one token at a time, reading the previous token and z at every step, its state started from z.

Training is teacher-forced (one parallel GRU pass over the true previous tokens). Two standard guards against
posterior collapse (Bowman et al., 2016), where a strong autoregressive decoder ignores z: word dropout, which hides
a fraction of the teacher-forced previous tokens (`word_dropout`) so the decoder has to ask z, and the KL warm-up
and free bits of the training loop (`train.kl_warmup_epochs`, `train.free_bits`). Decoding feeds each chosen token
back: greedy (the most probable token per step: reconstructions, traversals, interpolations) or sampled at a
temperature (prior samples for the MOSES metrics, as generative models are sampled). Any token sequence is a
molecule under SELFIES (`[nop]`, the padding, is skipped), and the first position is restricted to tokens that began
a training molecule (atoms), so every decoded point is a valid, non-empty molecule.
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
    word_dropout: float = 0.25  # fraction of teacher-forced previous tokens hidden from the decoder in training

    def __post_init__(self) -> None:
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        if self.likelihood != "categorical":
            raise ValueError(f"selfies_vae models tokens: likelihood must be 'categorical', got {self.likelihood!r}")
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2 (the padding and one token), got {self.vocab_size}")
        if not 0 <= self.word_dropout <= 1:
            raise ValueError(f"word_dropout must be in [0, 1], got {self.word_dropout}")


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
    """(z, previous tokens) -> (n, positions, vocabulary) logits: a GRU started from z that reads, at each step,
    the previous token's embedding concatenated with z. Index vocab_size is the start token, vocab_size + 1 the
    hidden ("dropped") word."""

    def __init__(self, latent_dim: int, hidden: int, vocab_size: int, embedding_dim: int) -> None:
        super().__init__()
        self.start, self.hidden_word = vocab_size, vocab_size + 1
        self.embed = nn.Embedding(vocab_size + 2, embedding_dim)
        self.to_hidden = nn.Linear(latent_dim, hidden)
        self.gru = nn.GRU(embedding_dim + latent_dim, hidden, batch_first=True)
        self.to_tokens = nn.Linear(hidden, vocab_size)

    def initial(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.to_hidden(z)).unsqueeze(0).contiguous()

    def forward(
        self, z: torch.Tensor, previous: torch.Tensor, h: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        steps = torch.cat([self.embed(previous), z.unsqueeze(1).expand(-1, previous.shape[1], -1)], -1)
        out, h = self.gru(steps, self.initial(z) if h is None else h)
        return self.to_tokens(out), h


@register_model("selfies_vae", SelfiesVAEConfig)
class SelfiesVAE(BaseVAE):
    config: SelfiesVAEConfig

    def __init__(self, config: SelfiesVAEConfig) -> None:
        super().__init__(config)
        hidden = config.hidden_dims[0]
        self.encoder = _TokenEncoder(config.vocab_size, config.embedding_dim, hidden)
        self._heads(2 * hidden)
        self.decoder = _TokenDecoder(config.latent_dim, hidden, config.vocab_size, config.embedding_dim)
        # tokens seen first in a training molecule: the only ones decoding may put first (saved with weights)
        self.register_buffer("first_tokens", torch.zeros(config.vocab_size, dtype=torch.bool))

    def _teacher_forced(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits of every position given the true previous tokens (some hidden by word dropout in training)."""
        previous = torch.cat([torch.full_like(x[:, :1], self.decoder.start), x[:, :-1]], 1)
        if self.training and self.config.word_dropout > 0:
            hide = torch.rand(previous.shape, device=x.device) < self.config.word_dropout
            hide[:, 0] = False
            previous = previous.masked_fill(hide, self.decoder.hidden_word)
        return self.decoder(z, previous)[0]

    @torch.no_grad()
    def _rollout(
        self, z: torch.Tensor, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode position by position, each chosen token fed back: greedy at temperature 0, else sampled from
        softmax(logits / temperature). Returns (tokens, logits)."""
        n = len(z)
        token = torch.full((n, 1), self.decoder.start, dtype=torch.long, device=z.device)
        h = None
        tokens, logits_all = [], []
        for position in range(self.config.input_dim):
            logits, h = self.decoder(z, token, h)
            logits = logits[:, 0]
            if position == 0 and self.first_tokens.any():
                logits = logits.masked_fill(~self.first_tokens, float("-inf"))
            if temperature > 0:
                probs = torch.softmax(logits.float() / temperature, -1)
                token = torch.multinomial(probs.cpu(), 1, generator=generator).to(z.device)
            else:
                token = logits.argmax(-1, keepdim=True)
            tokens.append(token)
            logits_all.append(logits)
        return torch.cat(tokens, 1), torch.stack(logits_all, 1)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """The logits of each position along the greedy decoding of z."""
        return self._rollout(z)[1]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The greedy decoding: the most probable token index at each step (as floats, like every model's rows)."""
        return self._rollout(z)[0].to(z.dtype)

    def sample_tokens(self, z: torch.Tensor, temperature: float = 1.0, seed: int = 0) -> torch.Tensor:
        """Token indices sampled step by step from p(x|z) at a temperature (as floats)."""
        generator = torch.Generator().manual_seed(seed)
        self.eval()
        return self._rollout(z, temperature, generator)[0].to(z.dtype)

    def reconstruction_nll(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """−log p(x|z) per molecule: the cross-entropy of every position's token, summed."""
        target = x.long()
        return F.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(-1)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        if self.training:
            self.first_tokens[x[:, 0].long()] = True
        mean, logvar = self.encode(x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if self.training else mean
        logits = self._teacher_forced(z, x.long())
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
