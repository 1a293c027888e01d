"""Chemistry for molecule datasets, on RDKit and selfies (the optional extra `latent[molecules]`): parsing and
canonical SMILES, Morgan fingerprints, SELFIES tokens, depictions, and the report's molecule sections.

Both packages are imported on first use, so that image and table users never need them; a missing one is one
line naming the extra.
"""

from __future__ import annotations

import functools
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
