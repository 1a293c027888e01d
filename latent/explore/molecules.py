"""Molecules above the pure layer: a molecule dataset table's SMILES and settings, decoded rows as SMILES, the latent
map's drawings and the report's molecule sections (generation metrics, property probes, neighbour similarity,
depictions). The chemistry itself is `latent/chem.py`; the metrics are `latent/analysis/molecules.py`."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import torch

from latent.chem import (
    THUMBNAIL_SIZE,
    depiction_png,
    grid_png,
    morgan_fingerprints,
    properties,
    selfies_tokens,
    tokens_to_smiles,
)
from latent.data.dataset import read_molecule_info, shard_files


def dataset_smiles(dataset_path: str | Path, splits: tuple[str, ...] | None = None) -> tuple[list[str], list[str]]:
    """(ids, canonical SMILES) of a molecule dataset table's rows, optionally only some splits, in id order."""
    import pyarrow.dataset as ds

    files = [str(p) for p in shard_files(dataset_path)]
    filt = ds.field("split").isin(list(splits)) if splits else None
    table = ds.dataset(files, format="parquet").to_table(columns=["id", "smiles"], filter=filt).sort_by("id")
    return [str(i) for i in table.column("id").to_pylist()], [str(s) for s in table.column("smiles").to_pylist()]


def tokens_of(decoded: np.ndarray, vocabulary: list[str]) -> list[list[str]]:
    """Decoded token index rows as token strings."""
    rows = np.clip(np.rint(np.asarray(decoded)), 0, len(vocabulary) - 1).astype(int)
    return [[vocabulary[i] for i in row] for row in rows.reshape(-1, rows.shape[-1])]


def decoded_smiles(dataset_path: str | Path, decoded: np.ndarray) -> list[str] | None:
    """Decoded rows of a molecule model as SMILES: SELFIES tokens decode to molecules; a fingerprint cannot be
    decoded, so each decoded fingerprint is shown as the train molecule nearest to it (Tanimoto). None elsewhere."""
    info = read_molecule_info(dataset_path)
    if info is None:
        return None
    decoded = np.asarray(decoded)
    if info["representation"] == "selfies":
        return tokens_to_smiles(decoded, info["tokens"])
    from latent.analysis.molecules import tanimoto_matrix

    _, train = dataset_smiles(dataset_path, ("train",))
    fps = morgan_fingerprints(train, info["radius"], info["bits"])
    flat = decoded.reshape(-1, decoded.shape[-1])
    nearest = tanimoto_matrix(flat, fps).argmax(1)
    return [train[int(i)] for i in nearest]


def depiction_thumbnails(space, ids: list[str]) -> list[str]:
    """Base64 PNG drawings of these rows' molecules, for the latent map's side panel."""
    found = dict(zip(*dataset_smiles(space.dataset.path), strict=True))
    return [base64.b64encode(depiction_png(found.get(i, ""), THUMBNAIL_SIZE)).decode() for i in ids]


# ---- the report's molecule sections -----------------------------------------------------------------------------


def molecule_sections(space, cfg, staging: Path) -> tuple[list, dict[str, float]]:
    """Generation metrics (SELFIES: validity, uniqueness, novelty of prior samples; reconstruction accuracy),
    property probes on z_mean against raw fingerprints, latent-neighbour Tanimoto, and depictions of prior samples,
    reconstructions and an interpolation path."""
    from latent.analysis import molecules as metrics_of
    from latent.analysis.generate import interpolate, sample_prior
    from latent.page import Section, png_section, table_html

    dataset = space.dataset.path
    info = read_molecule_info(dataset) or {}
    selfies_model = info.get("representation") == "selfies"
    codes = space.codes
    ids = np.asarray([str(i) for i in codes["id"]])
    split = np.asarray(codes["split"]).astype(str)
    found = dict(zip(*dataset_smiles(dataset), strict=True))
    smiles = [found[i] for i in ids]
    train_smiles = [s for s, p in zip(smiles, split, strict=True) if p == "train"]
    metrics: dict[str, float] = {}
    sections = []
    notes = []

    n_samples = max(cfg.n_samples, 1)
    if selfies_model and hasattr(space.model, "sample_tokens"):
        # a generative model is sampled: each token drawn from p(x|z) at temperature 1, z from the prior; the
        # greedy decoding of the same codes is reported beside (it maps nearby codes to one molecule)
        z = torch.randn(n_samples, space.model.config.latent_dim, generator=torch.Generator().manual_seed(cfg.seed))
        sampled = decoded_smiles(dataset, space.model.sample_tokens(z, 1.0, cfg.seed).numpy()) or []
        greedy = decoded_smiles(dataset, sample_prior(space.model, n_samples, cfg.seed)) or []
        metrics["molecules_uniqueness_greedy"] = metrics_of.uniqueness(greedy)
    else:
        sampled = decoded_smiles(dataset, sample_prior(space.model, n_samples, cfg.seed)) or []
    if selfies_model:
        metrics.update(metrics_of.generation_metrics(sampled, train_smiles))
    else:
        notes.append(
            "Validity, uniqueness and novelty do not apply to the fingerprint model: a Morgan fingerprint cannot be "
            "decoded into a molecule, so its prior samples are shown as the nearest train molecules."
        )
    shown = min(len(sampled), 18)
    grid_png(staging / "molecule_samples.png", sampled[:shown], [f"sample {i}" for i in range(shown)])
    sections.append(
        png_section(
            "molecule-samples",
            "Molecules decoded from the prior" if selfies_model else "Prior samples as their nearest train molecules",
            staging / "molecule_samples.png",
        )
    )

    test = [i for i, p in zip(ids, split, strict=True) if p == "test"] or list(ids)
    test = sorted(test)
    if test and selfies_model:
        decoded = space.decode(space.z_mean(test))
        recon = decoded_smiles(dataset, decoded) or []
        metrics["molecules_reconstruction_accuracy"] = metrics_of.reconstruction_accuracy(
            [found[i] for i in test], recon
        )
        metrics["molecules_reconstruction_token_accuracy"] = metrics_of.token_accuracy(
            [selfies_tokens(found[i]) or [] for i in test], tokens_of(decoded, info["tokens"])
        )
    if len(test) >= 2:
        few = test[: min(cfg.n_reconstructions, 6)]
        recon_few = decoded_smiles(dataset, space.decode(space.z_mean(few))) or []
        grid_png(
            staging / "molecule_reconstructions.png",
            [s for pair in zip([found[i] for i in few], recon_few, strict=True) for s in pair],
            [s for i in few for s in (f"{i[-12:]}", "decoded")],
            per_row=2 * min(3, len(few)),
        )
        sections.append(
            png_section(
                "molecule-reconstructions",
                "Reconstructions: test molecules and their decoded posterior means",
                staging / "molecule_reconstructions.png",
            )
        )
        a, b = test[0], test[1]
        z0, z1 = space.z_mean([a, b])
        steps = max(cfg.interpolation_steps, 3)
        path = decoded_smiles(dataset, space.decode(interpolate(z0, z1, steps))) or []
        grid_png(
            staging / "molecule_interpolation.png",
            [found[a], *path, found[b]],
            ["from", *(f"t={t:.2f}" for t in np.linspace(0, 1, steps)), "to"],
            per_row=min(steps + 2, 7),
        )
        sections.append(
            png_section(
                "molecule-interpolation",
                f"Interpolation from {a} to {b} (decoded points between their codes)",
                staging / "molecule_interpolation.png",
            )
        )

    radius, bits = int(info.get("radius", 2)), int(info.get("bits", 1024))
    fps = morgan_fingerprints(smiles, radius, bits)
    props = properties(smiles)
    train_rows, test_rows = split == "train", split != "train"
    if train_rows.sum() >= 5 and test_rows.sum() >= 5:
        z = np.asarray(codes["z_mean"], np.float64)
        for name, y in props.items():
            probe = metrics_of.property_probe_r2(z[train_rows], y[train_rows], z[test_rows], y[test_rows])
            raw = metrics_of.property_probe_r2(fps[train_rows], y[train_rows], fps[test_rows], y[test_rows])
            metrics[f"molecules_probe_r2_{name}_latent"] = probe
            metrics[f"molecules_probe_r2_{name}_fingerprint"] = raw
    metrics.update(metrics_of.neighbour_tanimoto(np.asarray(codes["z_mean"]), fps, seed=cfg.seed))

    body = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    body += (
        "<p>MOSES-style metrics (Polykovskiy et al., 2020) on molecules sampled from the prior (tokens drawn at "
        "temperature 1; uniqueness_greedy: the most probable tokens of the same codes); reconstruction: greedy "
        "decoding of test molecules' z_mean, exact (canonical SMILES) and per SELFIES token; probes are ridge "
        "regressions of RDKit's logP, QED and TPSA fitted on the train split and scored (R²) on the others, from "
        "z_mean and from the raw Morgan fingerprints; Tanimoto similarity of each molecule's nearest latent "
        "neighbours against random pairs.</p>"
    )
    body += table_html({k: f"{v:.4g}" for k, v in metrics.items()})
    sections.insert(0, Section("molecule-metrics", "Molecules: generation, probes and neighbours", body))
    return sections, metrics
