"""ProdLDA (Srivastava & Sutton, 2017, "Autoencoding variational inference for topic models"): a VAE over
bag-of-words counts whose decoder is a product of experts over the vocabulary.

A document's code z gives the topic mixture θ = softmax(s · z); the decoder turns θ into word logits through one
linear map (the topic-word matrix) and a batch normalisation without affine parameters, and the likelihood is
multinomial: −log p(x|z) = −Σ_w x_w log softmax(logits)_w. Chosen over NVDM (Miao et al., 2016) because each latent
dimension is a topic with top words to show, and the paper reports far more coherent topics than NVDM's.

The prior is the paper's Laplace approximation of a symmetric Dirichlet(α) prior on θ, N(0, σ² I) with
σ² = (1/α)(1 − 1/K) for K topics, written as z ~ N(0, I) scaled by s = σ inside the softmax: the same model, with
the model family's N(0, I) prior on z, so every analysis of the latent space (KL per dimension, prior samples,
traversals) applies unchanged. A small α (`prior_alpha`, default 0.1) asks for documents made of few topics, which
keeps topics apart. As in the paper: dropout on the encoder's features and on θ, batch normalisation of the code's
mean and log-variance, Adam with β1 = 0.99. The encoder reads log(1 + counts).
"""

from __future__ import annotations

import itertools
import math
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
    # α of the symmetric Dirichlet prior on the topic mixture that z's N(0, I) prior approximates (Laplace)
    prior_alpha: float = 0.1

    def __post_init__(self) -> None:
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        if self.likelihood != "multinomial":
            raise ValueError(f"prodlda models word counts: likelihood must be 'multinomial', got {self.likelihood!r}")
        if self.prior_alpha <= 0:
            raise ValueError(f"prior_alpha must be positive, got {self.prior_alpha}")
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
        k = config.latent_dim
        self.prior_scale = math.sqrt((1.0 / config.prior_alpha) * (1.0 - 1.0 / k)) if k > 1 else 1.0
        self.topics = nn.Linear(config.latent_dim, config.input_dim, bias=False)
        self.word_norm = _BatchNorm(config.input_dim, affine=False)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.mean_norm(self.to_mean(h)), self.logvar_norm(self.to_logvar(h)).clamp(-30.0, 20.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.word_norm(self.topics(self.topic_dropout(self.mixture(z))))

    def mixture(self, z: torch.Tensor) -> torch.Tensor:
        """θ = softmax(s · z): the topic mixture of a code."""
        return torch.softmax(self.prior_scale * z, -1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The word distribution of p(x|z) (a document's expected counts divided by its length)."""
        return torch.softmax(self.decode_logits(z), -1)

    def reconstruction_nll(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return -(x * torch.log_softmax(logits, -1)).sum(-1)

    @torch.no_grad()
    def topic_word_weights(self) -> torch.Tensor:
        """(latent_dim, vocabulary) word logits of a document made of topic k alone (θ = e_k, batch normalisation
        at its running statistics): row k ranks the words of topic k by p(w | topic k), as LDA's topic-word
        distributions rank theirs. (The raw weight rows alone rank words by their lift over the batch-normalised
        background, which puts rare words first.)"""
        training = self.training
        self.eval()
        eye = torch.eye(self.config.latent_dim, device=self.topics.weight.device)
        logits = self.word_norm(self.topics(eye))
        self.train(training)
        return logits

    def configure_optimizers(self, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
        """Adam with a high first-moment decay (β1 = 0.99), the paper's setting: it keeps the topics from
        collapsing onto a few words early in training."""
        return [torch.optim.AdamW(self.parameters(), lr=lr, betas=(0.99, 0.999), weight_decay=weight_decay)]

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
