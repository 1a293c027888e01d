"""The `molecules` source: SMILES from a CSV / Parquet column or a `.smi` file (or the built-in set of 2,000
drug-like molecules, latent/data/molecules.smi), parsed and canonicalised with RDKit.

Ingest reads every SMILES once into `raw.parquet` (id, label, canonical SMILES, property columns, and why a row is
unusable: RDKit cannot parse it, or it is longer than `dataset.molecules.max_tokens` SELFIES tokens). Each Dask
worker then turns its molecules into the configured representation:
- `fingerprint`: Morgan bits (radius and length from `dataset.molecules`), uint8 0/1 — a Bernoulli VAE's input;
- `selfies`: SELFIES token indices, padded with `[nop]` to `max_tokens`, over a vocabulary fitted on the train
  split at preprocessing (a val/test molecule with a token the train split never has is quarantined with why).
The dataset table keeps the canonical SMILES (`smiles`) and the property columns; latent tables carry them on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from latent.config import SplitConfig, stable_hash
from latent.data.sources.base import (
    RAW_FILE,
    Plan,
    Rows,
    Source,
    class_codes,
    matching_files,
    register_source,
    write_raw_table,
)
from latent.errors import DataError
from latent.workspace import atomic_write_text

BUILTIN = Path(__file__).parent.parent / "molecules.smi"  # package data of latent.data
TABLE_SUFFIXES = (".csv", ".parquet", ".pq", ".smi")
RESERVED = ("id", "split", "label", "x", "smiles")


def read_smi(path: Path) -> tuple[list[str], list[str]]:
    """(SMILES, where) of a .smi file: one molecule a line (SMILES, then optionally whitespace and a name);
    blank lines and lines starting with # are skipped."""
    smiles, where = [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at {exc.start})") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        smiles.append(line.split()[0])
        where.append(f"{path}:{n}")
    return smiles, where


def _table_molecules(path: Path, column: str, label: str | None, props: list[str]) -> tuple[list, list, dict, list]:
    """(SMILES, labels, property values, where) of one CSV or Parquet file; `where` is file:row (1-based rows)."""
    try:
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pacsv

            options = pacsv.ConvertOptions(column_types={column: pa.string()})
            table = pacsv.read_csv(path, convert_options=options)
        else:
            table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: cannot be read ({' '.join(str(exc).split())[:200]})") from None
    if column not in table.column_names:
        raise DataError(
            f"{path}: no SMILES column {column!r} (dataset.molecules.smiles_column); columns: {table.column_names}"
        )
    if label and label not in table.column_names:
        raise DataError(f"{path}: no label column {label!r} (dataset.molecules.label)")
    values: dict[str, np.ndarray] = {}
    for name in props:
        if name not in table.column_names:
            raise DataError(f"{path}: no property column {name!r} (dataset.molecules.properties)")
        col = table.column(name)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_null(col.type)):
            raise DataError(f"{path}: property column {name!r} holds {col.type}, expected numbers")
        values[name] = np.asarray(col.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False))
    smiles = table.column(column).cast(pa.string()).to_pylist()
    labels = table.column(label).to_pylist() if label else [None] * len(smiles)
    return smiles, labels, values, [f"{path}:{i + 1}" for i in range(len(smiles))]


@register_source
class MoleculeSource(Source):
    name = "molecules"

    def _opts(self):
        return self.cfg.molecules

    def _files(self) -> list[Path]:
        if not self.cfg.path:
            return [BUILTIN]

        files = matching_files(self.cfg.path, "molecule files")
        for f in files:
            if f.suffix.lower() not in TABLE_SUFFIXES:
                raise DataError(f"{f}: expected a .csv, .parquet or .smi file of SMILES")
        return files

    def fingerprint(self) -> str:
        files = self._files()
        stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        return stable_hash({"source": "molecules", "files": stats, "options": self._opts().model_dump()})

    def _molecules(self) -> tuple[list[str], list, list[str], list[str], dict[str, np.ndarray]]:
        """(ids, labels, SMILES as written, where each came from, property columns) of every molecule."""
        opts = self._opts()
        clash = [p for p in opts.properties if p in RESERVED]
        if clash:
            raise DataError(f"dataset.molecules.properties: {clash[0]!r} is a reserved column name ({RESERVED})")
        ids, labels, smiles, where = [], [], [], []
        props: dict[str, list[np.ndarray]] = {p: [] for p in opts.properties}
        for f in self._files():
            if f.suffix.lower() == ".smi":
                s, w = read_smi(f)
                lab, values = [None] * len(s), {p: np.full(len(s), np.nan) for p in opts.properties}
                if opts.properties and f != BUILTIN:
                    raise DataError(f"{f}: a .smi file has no property columns (dataset.molecules.properties)")
            else:
                s, lab, values, w = _table_molecules(f, opts.smiles_column, opts.label, opts.properties)
            if f == BUILTIN:
                ids += [f"mol-{i:05d}" for i in range(len(s))]
            else:
                digest = hashlib.sha1(str(f.resolve()).encode()).hexdigest()[:8]
                ids += [f"{f.stem}-{digest}-{i:08d}" for i in range(len(s))]
            smiles += s
            labels += lab
            where += w
            for p in opts.properties:
                props[p].append(values[p])
        if not self.cfg.path and opts.n_molecules is not None:
            n = opts.n_molecules
            ids, labels, smiles, where = ids[:n], labels[:n], smiles[:n], where[:n]
            props = {p: [np.concatenate(v)[:n]] for p, v in props.items()}
        columns = {p: np.concatenate(v) if v else np.zeros(0) for p, v in props.items()}
        return ids, labels, smiles, where, columns

    def plan(self, raw_dir: Path, shard_rows: int) -> Plan:
        from latent.chem import canonical_smiles, selfies_tokens

        opts = self._opts()
        ids, labels, smiles, where, props = self._molecules()
        if not ids:
            raise DataError(f"dataset.path {self.cfg.path}: no molecules")
        canonical, problems = [], []
        for s, place in zip(smiles, where, strict=True):
            c = canonical_smiles(s) if s is not None else None
            problem = None
            if c is None:
                problem = f"{place}: RDKit cannot parse the SMILES {s!r}" if s else f"{place}: empty SMILES"
            elif opts.representation == "selfies":
                tokens = selfies_tokens(c)
                if tokens is None:
                    problem = f"{place}: SMILES {s!r} cannot be written as SELFIES"
                elif len(tokens) > opts.max_tokens:
                    problem = (
                        f"{place}: SMILES {s!r} has {len(tokens)} SELFIES tokens, more than "
                        f"dataset.molecules.max_tokens ({opts.max_tokens})"
                    )
            if problem and opts.on_bad_file == "error":
                raise DataError(f"{problem} (set dataset.molecules.on_bad_file: skip to leave it out)")
            canonical.append(c)
            problems.append(problem)
        codes, classes = class_codes(labels)
        table = pa.table(
            {
                "id": pa.array(ids, pa.string()),
                "label": pa.array(codes, pa.int64()),
                "smiles": pa.array(canonical, pa.string()),
                "problem": pa.array(problems, pa.string()),
                **{p: pa.array(v, pa.float64()) for p, v in props.items()},
            }
        )
        partitions = write_raw_table(table, raw_dir, shard_rows)
        info = {"representation": opts.representation, "radius": opts.radius, "bits": opts.bits}
        width = opts.bits if opts.representation == "fingerprint" else 0  # SELFIES: fitted at preprocessing
        return Plan(partitions, (0, 1, width), 1.0, len(ids), {"raw": RAW_FILE, "classes": classes, "molecules": info})

    def fit_on_train(self, plan_file: Path, split: SplitConfig) -> Path:
        """SELFIES: the token vocabulary of the train split's molecules ([nop], the padding, first), written into a
        plan of its own beside the ingest plan. Fingerprints need nothing fitted."""
        opts = self._opts()
        if opts.representation != "selfies":
            return plan_file
        from latent.chem import PAD, selfies_tokens
        from latent.data.dataset import split_of

        plan = json.loads(plan_file.read_text())
        fitted = plan_file.with_name(f"{plan_file.stem}-selfies-{stable_hash(split.model_dump())[:8]}.json")
        if fitted.is_file():
            return fitted
        raw = pq.read_table(plan_file.parent / plan["info"]["raw"], columns=["id", "smiles", "problem"])
        tokens: set[str] = set()
        for i, s, p in zip(*(raw.column(c).to_pylist() for c in ("id", "smiles", "problem")), strict=True):
            if p is None and split_of(i, split) == "train":
                tokens.update(selfies_tokens(s) or [])
        if not tokens:
            raise DataError(f"{self.cfg.path or 'molecules'}: no usable train molecules to fit a SELFIES vocabulary")
        plan["info"]["molecules"]["tokens"] = [PAD, *sorted(tokens - {PAD})]
        plan["info"]["molecules"]["max_tokens"] = opts.max_tokens
        plan["geometry"] = [0, 1, opts.max_tokens]
        atomic_write_text(fitted, json.dumps(plan))
        return fitted

    def read(self, partition: list[int]) -> Rows:
        from latent.chem import morgan_fingerprints, selfies_tokens

        opts = self._opts()
        table = pq.ParquetFile(self.raw_path).read_row_groups(partition)
        ids, labels, smiles, problems = (table.column(c).to_pylist() for c in ("id", "label", "smiles", "problem"))
        skipped = [(ids[n], problems[n]) for n in range(len(ids)) if problems[n] is not None]
        keep = [n for n, p in enumerate(problems) if p is None]
        if opts.representation == "fingerprint":
            x = morgan_fingerprints([smiles[n] for n in keep], opts.radius, opts.bits)
        else:
            vocabulary = self.plan_info["molecules"]["tokens"]
            index = {t: i for i, t in enumerate(vocabulary)}
            rows, kept = [], []
            for n in keep:
                tokens = selfies_tokens(smiles[n]) or []
                unknown = [t for t in tokens if t not in index]
                if unknown:
                    skipped.append(
                        (
                            ids[n],
                            f"{ids[n]}: SMILES {smiles[n]!r} has the token {unknown[0]} that no "
                            "train molecule has (the SELFIES vocabulary is fitted on the train split)",
                        )
                    )
                    continue
                row = np.zeros(opts.max_tokens, np.float32)
                row[: len(tokens)] = [index[t] for t in tokens]
                rows.append(row)
                kept.append(n)
            keep = kept
            x = np.stack(rows) if rows else np.zeros((0, opts.max_tokens), np.float32)
        extra = {"smiles": np.array([smiles[n] for n in keep], dtype=str)}
        for p in opts.properties:
            values = table.column(p).to_numpy(zero_copy_only=False)
            extra[p] = np.asarray([values[n] for n in keep], np.float64)
        label_array = pa.array([labels[n] for n in keep], pa.int64())
        return Rows([ids[n] for n in keep], x, label_array, extra, skipped)


def token_vocabulary_size(dataset_path: str | Path) -> int:
    """The SELFIES vocabulary size of a molecule dataset table (for sizing a sequence model), or 0."""
    from latent.data.dataset import read_molecule_info

    info = read_molecule_info(dataset_path)
    return len(info.get("tokens", [])) if info else 0
