"""Probes of a latent table: `probe_report` (latent.analysis.probes) on its train and test splits, with the raw
inputs read from the dataset table it was encoded from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latent.analysis.probes import probe_report
from latent.data.dataset import load_dataset_arrays
from latent.errors import LatentError
from latent.tables import load_latent_arrays, read_table_info


def probe_table(
    table_path: str | Path, budgets: list[int | None] = (10, 100, 1000, None), raw: bool = True, seed: int = 0
) -> dict[str, float]:
    """`probe_report` on a latent table: train split → test split, labels from the table, raw inputs (optional)
    from the dataset table it was encoded from."""

    codes = load_latent_arrays(table_path, ("train", "test"))
    labels = codes["label"]
    if labels.dtype.kind not in "iu" or np.all(labels < 0):
        raise LatentError(f"{table_path}: probes need integer class labels; this table has none")
    z, y = {}, {}
    for split in ("train", "test"):
        mask = codes["split"] == split
        if not mask.any():
            raise LatentError(f"{table_path}: probes need a {split!r} split; it has no rows")
        z[split], y[split] = codes["z_mean"][mask], labels[mask]
    x = None
    if raw:
        dataset_path = read_table_info(table_path).info["dataset"]["path"]
        x = {}
        for split in ("train", "test"):
            ids, features, _ = load_dataset_arrays(dataset_path, (split,))
            order = np.argsort(ids.astype(str))
            x[split] = features[order]
            if not np.array_equal(ids.astype(str)[order], codes["id"][codes["split"] == split].astype(str)):
                raise LatentError(f"{table_path}: its {split} rows differ from those of its dataset {dataset_path}")
    return probe_report(z, x, y, budgets, seed=seed)
