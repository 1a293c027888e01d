"""Topic-model metrics as pure functions of arrays: top words, NPMI coherence, perplexity; and the comparison of a
trained topic VAE with scikit-learn's LatentDirichletAllocation on the same split.

NPMI is computed here from document co-occurrence in a reference corpus (Lau et al., 2014; Bouma, 2009):
NPMI(a, b) = log(p(a, b) / (p(a) p(b))) / −log p(a, b), with p the fraction of documents containing the words, −1
for a pair that never co-occurs; a topic's coherence is the mean over the pairs of its top words. No gensim: it is
one matrix product over a binary document-word matrix. The comparison's reference corpus is every document of the
dataset (as topic-model toolkits such as OCTIS use the corpus itself); it is also given on the held-out documents
alone, where a topic's specific words rarely meet in a few hundred documents and score near −1.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

TOP_WORDS = 10


def top_word_indices(weights: np.ndarray, n: int = TOP_WORDS) -> np.ndarray:
    """(topics, n) indices of each row's n largest weights, largest first (ties by index)."""
    weights = np.asarray(weights, np.float64)
    return np.argsort(-weights, axis=1, kind="stable")[:, :n]


def top_words(weights: np.ndarray, vocabulary: list[str], n: int = TOP_WORDS) -> list[list[str]]:
    return [[vocabulary[i] for i in row] for row in top_word_indices(weights, n)]


def npmi_coherence(top: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean NPMI over the pairs of each topic's top words (rows of `top`: vocabulary indices), with document
    probabilities from `counts` (documents × vocabulary; any value > 0 means the word is present). In [−1, 1]."""
    present = np.asarray(counts) > 0
    n_docs = max(len(present), 1)
    out = np.zeros(len(top))
    for t, words in enumerate(np.asarray(top)):
        d = present[:, words].astype(np.float64)
        p = d.mean(0)
        joint = (d.T @ d) / n_docs
        scores = []
        for i, j in itertools.combinations(range(len(words)), 2):
            if joint[i, j] <= 0 or p[i] <= 0 or p[j] <= 0:
                scores.append(-1.0)
            elif joint[i, j] >= 1.0:
                scores.append(1.0)
            else:
                scores.append(np.log(joint[i, j] / (p[i] * p[j])) / -np.log(joint[i, j]))
        out[t] = float(np.mean(scores)) if scores else 0.0
    return out


def perplexity_from_bound(neg_elbo_per_doc: np.ndarray, counts: np.ndarray) -> float:
    """exp(Σ_d −ELBO_d / Σ_d N_d): the per-word perplexity bound over a set of documents (lower is better)."""
    words = float(np.asarray(counts).sum())
    return float(np.exp(np.sum(neg_elbo_per_doc) / words)) if words > 0 else float("nan")


@torch.no_grad()
def model_neg_elbo(model: torch.nn.Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """−ELBO per document with the posterior mean: −log p(x | z = E[z|x]) + KL(q(z|x) ‖ p(z))."""
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size], np.float32))
        mean, logvar = model.encode(xb)
        nll = model.reconstruction_nll(xb, model.decode_logits(mean))
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
        out.append((nll + kl).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def compare_with_lda(
    model: torch.nn.Module,
    x_train: np.ndarray,
    x_test: np.ndarray,
    vocabulary: list[str],
    seed: int = 0,
    x_reference: np.ndarray | None = None,
) -> tuple[dict[str, float], dict[str, list[list[str]]]]:
    """Held-out perplexity and NPMI coherence of the model's topics and of scikit-learn's LDA with as many topics,
    fitted on the same train documents. NPMI on `x_reference` (every document of the dataset; default: train and
    held-out together) and on the held-out documents alone. Returns (metrics, top words)."""
    from sklearn.decomposition import LatentDirichletAllocation

    k = int(model.config.latent_dim)
    weights = model.topic_word_weights().cpu().numpy()
    lda = LatentDirichletAllocation(n_components=k, learning_method="batch", max_iter=25, random_state=seed)
    lda.fit(x_train)
    metrics: dict[str, float] = {}
    words = {"prodlda": top_words(weights, vocabulary), "lda": top_words(lda.components_, vocabulary)}
    reference = np.concatenate([x_train, x_test]) if x_reference is None else x_reference
    for name, w in (("prodlda", weights), ("lda", lda.components_)):
        metrics[f"text_npmi_{name}"] = float(npmi_coherence(top_word_indices(w), reference).mean())
        metrics[f"text_npmi_heldout_{name}"] = float(npmi_coherence(top_word_indices(w), x_test).mean())
    metrics["text_perplexity_prodlda"] = perplexity_from_bound(model_neg_elbo(model, x_test), x_test)
    metrics["text_perplexity_lda"] = float(lda.perplexity(x_test))
    metrics["text_heldout_documents"] = float(len(x_test))
    metrics["text_reference_documents"] = float(len(reference))
    return metrics, words
