"""The `molecules` source: SMILES strings, parsed and canonicalised with RDKit (the optional extra
`latent[molecules]`)."""

from __future__ import annotations
