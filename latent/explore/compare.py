"""Comparing two latent tables of one dataset: linear CKA of their codes over the rows they share."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latent.analysis.cka import linear_cka
from latent.errors import LatentError
from latent.tables import load_latent_arrays


def compare_tables(path_a: str | Path, path_b: str | Path, split: str | None = None) -> dict[str, float | int]:
    """Linear CKA between the z_mean of two latent tables over the ids they share (optionally one split)."""
    splits = (split,) if split else None
    a = load_latent_arrays(path_a, splits)
    b = load_latent_arrays(path_b, splits)
    shared, ia, ib = np.intersect1d(a["id"].astype(str), b["id"].astype(str), return_indices=True)
    if len(shared) < 2:
        raise LatentError(
            f"{path_a} and {path_b}: fewer than 2 shared ids ({len(shared)}); compare tables of one dataset"
        )
    za, zb = a["z_mean"][ia], b["z_mean"][ib]
    return {
        "linear_cka": linear_cka(za, zb),
        "shared_rows": len(shared),
        "rows_a": len(a["id"]),
        "rows_b": len(b["id"]),
        "latent_dim_a": za.shape[1],
        "latent_dim_b": zb.shape[1],
    }
