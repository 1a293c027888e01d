"""ProdLDA (Srivastava & Sutton, 2017, "Autoencoding variational inference for topic models"): a VAE over
bag-of-words counts whose decoder is a product of experts over the vocabulary.

A document's code z is a logistic-normal topic mixture θ = softmax(z); the decoder turns θ into word logits through
one linear map (the topic-word matrix, one row of weights per topic) and a batch normalisation, and the likelihood
is multinomial: −log p(x|z) = −Σ_w x_w log softmax(logits)_w. Chosen over NVDM (Miao et al., 2016) because its
topics are the decoder's weight rows, so each latent dimension has top words to show, and the paper reports far
more coherent topics than NVDM's. The prior is N(0, I) on z, the shared prior of the model family (the paper's
Laplace approximation of a Dirichlet(1) prior is N(0, (1 − 1/K) I), nearly the same), so every analysis of the
latent space (KL per dimension, prior samples, traversals) applies unchanged. The encoder reads log(1 + counts).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from latent.models.registry import register_model
from latent.models.vae import BaseVAE, VAEConfig, VAEOutput


@dataclass
class ProdLDAConfig(VAEConfig):
    hidden_dims: tuple[int, ...] = (100, 100)
    likelihood: str = "multinomial"
    dropout: float = 0.2  # on the encoder's features and on the topic mixture, as in the paper

    def __post_init__(self) -> None:
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        if self.likelihood != "multinomial":
            raise ValueError(f"prodlda models word counts: likelihood must be 'multinomial', got {self.likelihood!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class _BatchNorm(nn.BatchNorm1d):
    """Batch normalisation that uses its running statistics for a batch of one row (a last, lone training row)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class _Log1p(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log1p(x)


@register_model("prodlda", ProdLDAConfig)
class ProdLDA(BaseVAE):
    config: ProdLDAConfig

    def __init__(self, config: ProdLDAConfig) -> None:
        super().__init__(config)
        dims = [config.input_dim, *config.hidden_dims]
        layers: list[nn.Module] = [_Log1p()]
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), nn.Softplus()]
        self.encoder = nn.Sequential(*layers, nn.Dropout(config.dropout))
        self._heads(dims[-1])
        self.mean_norm = _BatchNorm(config.latent_dim, affine=False)
        self.logvar_norm = _BatchNorm(config.latent_dim, affine=False)
        self.topic_dropout = nn.Dropout(config.dropout)
        self.topics = nn.Linear(config.latent_dim, config.input_dim, bias=False)
        self.word_norm = _BatchNorm(config.input_dim, affine=False)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.mean_norm(self.to_mean(h)), self.logvar_norm(self.to_logvar(h)).clamp(-30.0, 20.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.word_norm(self.topics(self.topic_dropout(torch.softmax(z, -1))))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The word distribution of p(x|z) (a document's expected counts divided by its length)."""
        return torch.softmax(self.decode_logits(z), -1)

    def reconstruction_nll(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return -(x * torch.log_softmax(logits, -1)).sum(-1)

    def topic_word_weights(self) -> torch.Tensor:
        """(latent_dim, vocabulary) weights: row k ranks the words of topic k."""
        return self.topics.weight.detach().T

    def forward(self, x: torch.Tensor) -> VAEOutput:
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
            recon=torch.softmax(logits, -1),
            terms=terms,
        )
