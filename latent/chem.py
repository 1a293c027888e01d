"""Chemistry for molecule datasets, on RDKit and selfies (the optional extra `latent[molecules]`): parsing and
canonical SMILES, Morgan fingerprints, SELFIES tokens, depictions, and the report's molecule sections.

Both packages are imported on first use, so that image and table users never need them; a missing one is one
line naming the extra.
"""

from __future__ import annotations

import base64
import functools
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from latent.errors import ConfigError

EXTRA = "pip install 'latent[molecules]'"
PAD = "[nop]"  # SELFIES' no-operation token: padding that every decoder ignores
DEPICTION_SIZE = 160
THUMBNAIL_SIZE = 96


@functools.cache
def rdkit() -> Any:
    """RDKit's Chem module, with its per-molecule warnings silenced (a bad SMILES is reported by us, once)."""
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        raise ConfigError(f"dataset.source: molecules needs RDKit; install it with {EXTRA}") from None
    RDLogger.DisableLog("rdApp.*")
    return Chem


@functools.cache
def selfies() -> Any:
    try:
        import selfies as sf
    except ImportError:
        raise ConfigError(f"molecules: the SELFIES representation needs selfies; install it with {EXTRA}") from None
    return sf


def canonical_smiles(smiles: str) -> str | None:
    """RDKit's canonical SMILES of a SMILES string, or None if RDKit cannot parse it (or it has no atoms)."""
    if not isinstance(smiles, str) or not smiles.strip():
        return None
    mol = rdkit().MolFromSmiles(smiles.strip())
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return rdkit().MolToSmiles(mol)


def morgan_fingerprints(smiles: list[str], radius: int = 2, bits: int = 1024) -> np.ndarray:
    """(n, bits) uint8 Morgan (ECFP-like) bit vectors; a row of zeros for a SMILES that does not parse."""
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    out = np.zeros((len(smiles), bits), np.uint8)
    for i, s in enumerate(smiles):
        mol = rdkit().MolFromSmiles(s) if s else None
        if mol is not None:
            out[i] = generator.GetFingerprintAsNumPy(mol)
    return out


def selfies_tokens(smiles: str) -> list[str] | None:
    """The SELFIES tokens of a SMILES string, or None if selfies cannot encode it."""
    sf = selfies()
    try:
        return list(sf.split_selfies(sf.encoder(smiles)))
    except sf.EncoderError:
        return None


def is_atom_token(token: str) -> bool:
    """A SELFIES token that places an atom (not a branch, a ring closure or padding)."""
    return token != PAD and "Branch" not in token and "Ring" not in token


def tokens_to_smiles(indices: np.ndarray, vocabulary: list[str]) -> list[str]:
    """Token index rows decoded through SELFIES into canonical SMILES (SELFIES makes every row a molecule)."""
    sf = selfies()
    out = []
    for row in np.asarray(indices).reshape(-1, np.asarray(indices).shape[-1]):
        tokens = [vocabulary[int(i)] for i in np.clip(np.rint(row), 0, len(vocabulary) - 1)]
        smiles = sf.decoder("".join(t for t in tokens if t != PAD))
        out.append(canonical_smiles(smiles) or smiles or "")
    return out


def properties(smiles: list[str]) -> dict[str, np.ndarray]:
    """RDKit's Crippen logP, QED and TPSA of each molecule (NaN where a SMILES does not parse)."""
    from rdkit.Chem import QED, Crippen, rdMolDescriptors

    out = {name: np.full(len(smiles), np.nan) for name in ("logp", "qed", "tpsa")}
    for i, s in enumerate(smiles):
        mol = rdkit().MolFromSmiles(s) if s else None
        if mol is not None:
            out["logp"][i] = Crippen.MolLogP(mol)
            out["qed"][i] = QED.qed(mol)
            out["tpsa"][i] = rdMolDescriptors.CalcTPSA(mol)
    return out


def depiction_png(smiles: str, size: int = DEPICTION_SIZE) -> bytes:
    """A PNG drawing of a molecule (an empty frame for one that does not parse)."""
    from rdkit.Chem.Draw import rdMolDraw2D

    drawer = rdMolDraw2D.MolDraw2DCairo(size, size)
    mol = rdkit().MolFromSmiles(smiles) if smiles else None
    if mol is not None:
        drawer.DrawMolecule(mol)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def grid_png(path: Path, smiles: list[str], legends: list[str], per_row: int = 6) -> None:
    """A grid of molecule drawings with a legend under each, written as one PNG."""
    from rdkit.Chem import Draw

    mols = [rdkit().MolFromSmiles(s) if s else None for s in smiles]
    image = Draw.MolsToGridImage(
        [m if m is not None else rdkit().Mol() for m in mols],
        molsPerRow=min(per_row, max(1, len(mols))),
        subImgSize=(DEPICTION_SIZE, DEPICTION_SIZE),
        legends=[legend[:40] for legend in legends],
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())


# ---- what a molecule dataset table records ---------------------------------------------------------------------


def read_molecule_info(dataset_path: str | Path) -> dict | None:
    """molecules.json of a molecule dataset table: representation, fingerprint settings, SELFIES vocabulary."""
    import json

    path = Path(dataset_path) / "molecules.json"
    return json.loads(path.read_text()) if path.is_file() else None


def dataset_smiles(dataset_path: str | Path, splits: tuple[str, ...] | None = None) -> tuple[list[str], list[str]]:
    """(ids, canonical SMILES) of a molecule dataset table's rows, optionally only some splits, in id order."""
    import pyarrow.dataset as ds

    files = sorted(str(p) for p in Path(dataset_path).glob("part-*.parquet"))
    filt = ds.field("split").isin(list(splits)) if splits else None
    table = ds.dataset(files, format="parquet").to_table(columns=["id", "smiles"], filter=filt).sort_by("id")
    return [str(i) for i in table.column("id").to_pylist()], [str(s) for s in table.column("smiles").to_pylist()]


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
    from latent.report import Section, png_section, table_html

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

    samples = sample_prior(space.model, max(cfg.n_samples, 1), cfg.seed)
    sampled = decoded_smiles(dataset, samples) or []
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
        recon = decoded_smiles(dataset, space.decode(space.z_mean(test))) or []
        metrics["molecules_reconstruction_accuracy"] = metrics_of.reconstruction_accuracy(
            [found[i] for i in test], recon
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
        "<p>MOSES-style metrics (Polykovskiy et al., 2020) on molecules decoded from the prior; probes are ridge "
        "regressions of RDKit's logP, QED and TPSA fitted on the train split and scored (R²) on the others, from "
        "z_mean and from the raw Morgan fingerprints; Tanimoto similarity of each molecule's nearest latent "
        "neighbours against random pairs.</p>"
    )
    body += table_html({k: f"{v:.4g}" for k, v in metrics.items()})
    sections.insert(0, Section("molecule-metrics", "Molecules: generation, probes and neighbours", body))
    return sections, metrics
