"""Writes latent/data/molecules.smi: the built-in molecule set (drug-like small molecules, enumerated here).

Scaffolds with two attachment points × common medicinal-chemistry substituents, canonicalised with RDKit, kept when
they pass simple drug-likeness bounds, then a deterministic sample. Run once; the file ships with the package, so
nothing is generated or downloaded at run time.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from rdkit import Chem, RDLogger
from rdkit.Chem import Descriptors

SCAFFOLDS = [
    "c1cc({a})ccc1{b}",
    "c1ccc({a})c({b})c1",
    "c1cc({a})cc({b})c1",
    "n1cc({a})ccc1{b}",
    "c1nc({a})ccc1{b}",
    "c1nc({a})ncc1{b}",
    "s1c({a})ccc1{b}",
    "o1c({a})ccc1{b}",
    "C1CC({a})CCC1{b}",
    "C1CN({a})CCC1{b}",
    "C1CN({a})CCN1{b}",
    "c1ccc2cc({a})ccc2c1{b}",
    "c1ccc2[nH]cc({a})c2c1{b}",
    "c1ccc(cc1)-c1cc({a})ccc1{b}",
    "O=C(N{a})c1ccc({b})cc1",
    "C(C{a})N{b}",
    "c1cc2OCOc2cc1{a}.{b}",
]
SUBSTITUENTS = [
    "[H]",
    "C",
    "CC",
    "C(C)C",
    "O",
    "OC",
    "OCC",
    "N",
    "N(C)C",
    "F",
    "Cl",
    "Br",
    "C(F)(F)F",
    "C(=O)O",
    "C(=O)N",
    "C(=O)OC",
    "C#N",
    "[N+](=O)[O-]",
    "S(=O)(=O)N",
    "NC(=O)C",
    "C(=O)C",
    "CO",
    "CCN",
    "c1ccccc1",
    "C1CC1",
    "C1CCOCC1",
    "N1CCOCC1",
    "CC(=O)O",
    "SC",
    "OC(F)(F)F",
]
# a few well-known drugs and small organics, as SMILES
KNOWN = [
    "CC(=O)Oc1ccccc1C(=O)O",
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "CC(=O)Nc1ccc(O)cc1",
    "CN1CCC[C@H]1c1cccnc1",
    "OC(=O)c1ccccc1O",
    "CC(C)NCC(O)c1ccc(O)c(O)c1",
    "COc1ccc2[nH]cc(CCNC(C)=O)c2c1",
    "NCCc1ccc(O)c(O)c1",
    "CN(C)CCCN1c2ccccc2CCc2ccccc21",
    "Clc1ccc(cc1)C(c1ccccc1)N1CCNCC1",
    "CCOC(=O)c1ccc(N)cc1",
    "O=C(O)CCc1ccccc1",
    "c1ccc2c(c1)ccc1ccccc12",
    "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1",
    "CCN(CC)C(=O)c1cccc(C)c1",
]


def main() -> None:
    RDLogger.DisableLog("rdApp.*")
    seen: dict[str, None] = {}
    for smiles in KNOWN:
        seen[Chem.MolToSmiles(Chem.MolFromSmiles(smiles))] = None
    candidates = []
    for scaffold, a, b in itertools.product(SCAFFOLDS, SUBSTITUENTS, SUBSTITUENTS):
        mol = Chem.MolFromSmiles(scaffold.format(a=a, b=b).replace(".[H]", ""))
        if mol is None or len(Chem.GetMolFrags(mol)) != 1:
            continue
        if not 5 <= mol.GetNumHeavyAtoms() <= 30 or Descriptors.MolWt(mol) > 450:
            continue
        candidates.append(Chem.MolToSmiles(mol))
    random.Random(0).shuffle(candidates)
    for smiles in candidates:
        if len(seen) >= 2000:
            break
        seen.setdefault(smiles, None)
    out = Path(__file__).resolve().parents[1] / "latent" / "data" / "molecules.smi"
    header = (
        "# latent's built-in molecules: enumerated by scripts/make_builtin_molecules.py (scaffolds x substituents)\n"
    )
    out.write_text(header + "".join(f"{s}\n" for s in seen))
    print(f"{len(seen)} molecules -> {out}")


if __name__ == "__main__":
    main()
