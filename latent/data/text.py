"""Kept only for `latent/analysis/modalities.py`, which imports `read_vocabulary` from here. The text source is now
`latent/data/sources/text.py`, and the vocabulary file belongs to the dataset table (`latent/data/dataset.py`).
Delete this module once modalities imports `read_vocabulary` from `latent.data.dataset`."""

from latent.data.dataset import read_vocabulary

__all__ = ["read_vocabulary"]
