"""Bad input through the `latent` command line, case by case.

Every case must end in exit code 2 and one line on stderr that starts `error:` and names the file, field or
argument and what was expected; no traceback; nothing half-written in the workspace (its listing before and after
differs at most by the MLflow record of the failed run and a complete ingest plan; no temporary names anywhere;
nothing deleted); and the earlier run intact: its files byte for byte, its latent table read with the same rows and
checksum, its MLflow runs still FINISHED.

The corpus runs in this process through the CLI app (typer's CliRunner, Prefect's test harness): a `latent`
subprocess pays 10-30 s of start-up per pipeline command on the 2-core machine (Prefect's ephemeral server), which
would put the corpus over ten minutes. `test_a_real_process_prints_the_same_line` runs representative cases as
real `latent` processes to check that nothing else (Prefect's or MLflow's logs) reaches their stderr.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import tempfile
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from latent.flows.cli import app
from PIL import Image
from typer.testing import CliRunner

from latent.config import DatasetConfig
from latent.models import create_model
from latent.models.io import save_model_files
from latent.tables import load_latent_arrays, read_catalog
from latent.workspace import Workspace
from tests.helpers import SMALL, app_error_line, clean_env, latent_command

pytestmark = pytest.mark.e2e

QUIET_LOGGERS = ("mlflow", "alembic", "distributed", "torch")


@dataclass(frozen=True)
class Prepared:
    """The shared workspace with one finished small `latent run`, and fingerprints of everything it wrote."""

    ws: Path
    table: Path
    model_dir: Path
    rows: int
    table_digest: str
    files: dict[str, str]  # relative path -> sha256 of every file the run wrote (the MLflow store aside)
    run_ids: list[str]
    tracking_uri: str


@dataclass(frozen=True)
class Env:
    prepared: Prepared
    data: Path  # this case's own folder, outside the workspace

    @property
    def ws(self) -> Path:
        return self.prepared.ws

    def fill(self, text: str) -> str:
        return text.format(ws=self.ws, data=self.data, table=self.prepared.table, model=self.prepared.model_dir)


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # after `latent`; {ws}, {data}, {table}, {model} are filled in
    expect: str  # a fragment the error line must contain ({...} filled in too)
    setup: Callable[[Env], None] | None = None
    cleanup: Callable[[Env], None] | None = None
    workspace: bool = True  # append --set workspace={ws}


def run_cli(args: list[str]):
    """`latent <args>` through the CLI app, as the console script runs it (standalone mode)."""
    return CliRunner().invoke(app, args, catch_exceptions=True)


def sets(*pairs: str) -> tuple[str, ...]:
    return tuple(a for p in pairs for a in ("--set", p))


PIPELINE = sets(*SMALL[:-1], "dask.n_workers=1")  # small and quick; one worker is enough to fail


def npz(path: str = "{data}/*.npz", *more: str) -> tuple[str, ...]:
    return sets("dataset.source=npz", "dataset.name=bad", f"dataset.path={path}", *more)


def folder(*more: str) -> tuple[str, ...]:
    return sets("dataset.source=image_folder", "dataset.name=bad", "dataset.path={data}/images", *more)


def tabular(*more: str) -> tuple[str, ...]:
    return sets("dataset.source=tabular", "dataset.name=bad", "dataset.path={data}/*.csv", *more)


def idx(*more: str) -> tuple[str, ...]:
    return sets(
        "dataset.source=idx",
        "dataset.name=bad",
        "dataset.path={data}/images-idx3-ubyte",
        "dataset.labels_path={data}/labels-idx1-ubyte",
        *more,
    )


# ---- input files the cases write ------------------------------------------------------------------------------


def write(name: str, content: str | bytes) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        path = env.data / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)

    return setup


def write_npz(name: str = "a.npz", **arrays: np.ndarray) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        np.savez(env.data / name, **arrays)

    return setup


def write_images(*specs: tuple[str, tuple[int, ...]]) -> Callable[[Env], None]:
    """PNG files under {data}/images: (relative path, shape) each."""

    def setup(env: Env) -> None:
        rng = np.random.default_rng(0)
        for rel, shape in specs:
            path = env.data / "images" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)

    return setup


def corrupt_image(env: Env) -> None:
    write_images(("a/0.png", (8, 8)), ("a/1.png", (8, 8)), ("b/2.png", (8, 8)))(env)
    path = env.data / "images" / "a" / "1.png"
    path.write_bytes(path.read_bytes()[:30])


def empty_folder(env: Env) -> None:
    (env.data / "images" / "a").mkdir(parents=True)


def idx_files(images: bytes, labels: bytes) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        (env.data / "images-idx3-ubyte").write_bytes(images)
        (env.data / "labels-idx1-ubyte").write_bytes(labels)

    return setup


def idx_bytes(kind: int, dims: tuple[int, ...], body: bytes) -> bytes:
    return bytes([0, 0, kind, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + body


GOOD_IDX_IMAGES = idx_bytes(0x08, (6, 4, 4), bytes(range(96)))
GOOD_IDX_LABELS = idx_bytes(0x08, (6,), bytes([0, 1, 2, 0, 1, 2]))


def model_dir(name: str, input_dim: int = 64, seed: int = 0) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        torch.manual_seed(seed)
        model = create_model("vae_mlp", input_dim=input_dim, latent_dim=2, hidden_dims=(8,))
        save_model_files(model.eval(), env.data / name)

    return setup


def damaged_model(name: str, config: str | None = None, weights: bytes | None = None) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        model_dir(name)(env)
        if config is not None:
            (env.data / name / "model_config.json").write_text(config)
        if weights is not None:
            (env.data / name / "weights.pt").write_bytes(weights)

    return setup


class _Payload:
    """Pickles to a call of os.mkdir: loading it unsafely would create {data}/pwned."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def malicious_weights(env: Env) -> None:
    model_dir("evil")(env)
    buffer = io.BytesIO()
    torch.save({"encoder.0.weight": _Payload(str(env.data / "pwned"))}, buffer)
    (env.data / "evil" / "weights.pt").write_bytes(buffer.getvalue())


def no_code_ran(env: Env) -> None:
    assert not (env.data / "pwned").exists(), "loading the checkpoint executed pickled code"


def copy_table(name: str, damage: Callable[[Path], None]) -> Callable[[Env], None]:
    """A damaged copy of the prepared table at latents/damaged/<name> in the workspace (removed afterwards)."""

    def setup(env: Env) -> None:
        target = env.ws / "latents" / "damaged" / name
        shutil.copytree(env.prepared.table, target)
        info = json.loads((target / "_table.json").read_text())  # the newest table: the `latents` view
        (target / "_table.json").write_text(json.dumps({**info, "created_at": "9999-12-31T00:00:00.000000Z"}))
        damage(target)

    return setup


def truncate_part(table: Path) -> None:
    part = next(table.glob("split=train/*.parquet"))
    part.write_bytes(part.read_bytes()[:500])


def remove_damaged_tables(env: Env) -> None:
    shutil.rmtree(env.ws / "latents" / "damaged", ignore_errors=True)


def then(*steps: Callable[[Env], None]) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        for step in steps:
            step(env)

    return setup


def cli_step(*args: str) -> Callable[[Env], None]:
    """Run a `latent` command that must succeed (a case's preparation)."""

    def setup(env: Env) -> None:
        result = run_cli([env.fill(a) for a in (*args, "--set", "workspace={ws}")])
        assert result.exit_code == 0, (args, result.stdout[-2000:], result.stderr[-2000:])

    return setup


def rewrite_npz(env: Env) -> None:
    """The source changes after it was ingested: other rows, so another size and modification time."""
    np.savez(env.data / "a.npz", x=np.ones((40, 4), np.float32), y=np.zeros(40, np.int64))


def truncate_dataset_shard(env: Env) -> None:
    (dataset,) = [
        d for d in (env.ws / "datasets").iterdir() if json.loads((d / "manifest.json").read_text())["source"] == "npz"
    ]
    shard = next(dataset.glob("part-*.parquet"))
    shard.write_bytes(shard.read_bytes()[:200])


def remove_npz_outputs(env: Env) -> None:
    for dataset in (env.ws / "datasets").iterdir():
        if json.loads((dataset / "manifest.json").read_text())["source"] == "npz":
            shutil.rmtree(dataset)


def remove_table_named(name: str) -> Callable[[Env], None]:
    def cleanup(env: Env) -> None:
        for table in (env.ws / "latents").glob(f"*/{name}"):
            shutil.rmtree(table)

    return cleanup


GOOD_NPZ = {"x": np.random.default_rng(0).random((30, 4), dtype=np.float32), "y": np.arange(30) % 3}

CASES = [
    # -- configuration files and --set overrides
    Case("config-file-missing", ("run", "--config", "{data}/nope.yaml"), "{data}/nope.yaml: config file not found"),
    Case(
        "config-malformed-yaml",
        ("run", "--config", "{data}/c.yaml"),
        "{data}/c.yaml: not valid YAML",
        write("c.yaml", "train: {epochs: 3\n"),
    ),
    Case(
        "config-not-a-mapping",
        ("run", "--config", "{data}/c.yaml"),
        "{data}/c.yaml: expected a mapping of sections at the top level, got list",
        write("c.yaml", "- train\n- epochs\n"),
    ),
    Case(
        "config-not-text",
        ("run", "--config", "{data}/c.yaml"),
        "{data}/c.yaml: cannot be read",
        write("c.yaml", bytes(range(128, 256))),
    ),
    Case(
        "config-unknown-section",
        ("run", "--config", "{data}/c.yaml"),
        "{data}/c.yaml: trian: unknown key; expected one of: workspace, dataset",
        write("c.yaml", "trian:\n  epochs: 3\n"),
    ),
    Case(
        "config-string-for-integer",
        ("run", "--config", "{data}/c.yaml"),
        "{data}/c.yaml: train.epochs: input should be a valid integer, got '5'",
        write("c.yaml", "train:\n  epochs: '5'\n"),
    ),
    Case(
        "config-extends-missing-file",
        ("run", "--config", "{data}/c.yaml"),
        "{data}/base.yaml: config file not found",
        write("c.yaml", "extends: base.yaml\n"),
    ),
    Case(
        "config-extends-itself",
        ("run", "--config", "{data}/c.yaml"),
        "{data}/c.yaml: extends itself",
        write("c.yaml", "extends: c.yaml\n"),
    ),
    Case(
        "set-wrong-type", ("run", *sets("train.epochs=ten")), "train.epochs: input should be a valid integer, got 'ten'"
    ),
    Case("set-unknown-key", ("run", *sets("train.epoch=3")), "train.epoch: unknown key; expected one of: epochs"),
    Case("set-without-value", ("run", "--set", "train.epochs"), "--set train.epochs: expected dotted.key=value"),
    Case("set-value-for-a-section", ("run", *sets("train=5")), "--set train=5: train: expected a section of keys"),
    Case("set-malformed-yaml-value", ("train", *sets("model.hidden_dims=[64,")), "the value is not valid YAML"),
    Case(
        "set-splits-leave-no-train",
        ("preprocess", *sets("preprocess.split.val=0.6", "preprocess.split.test=0.5")),
        "val + test must be below 1",
    ),
    Case("set-unknown-model", ("train", *sets("model.name=gpt")), "model.name: unknown model 'gpt'; expected one of"),
    Case(
        "set-foreign-model-param", ("train", *sets("model.params.gamma=2")), "params.gamma: not a parameter of vae_mlp"
    ),
    Case("set-bad-device", ("train", *sets("train.device=gpu")), "train.device: string should match pattern"),
    Case(
        "set-zero-batch", ("encode", *sets("encode.batch_size=0")), "encode.batch_size: input should be greater than 0"
    ),
    Case("set-file-source-without-path", ("ingest", *sets("dataset.source=npz")), "source npz needs dataset.path"),
    Case(
        "set-tiny-tsne-max-rows",
        ("report", *sets("report.tsne_max_rows=5")),
        "report.tsne_max_rows: input should be greater than or equal to 10, got 5",
    ),
    Case(
        "set-zero-tsne-iterations",
        ("report", *sets("report.tsne_iterations=0")),
        "report.tsne_iterations: input should be greater than or equal to 1, got 0",
    ),
    Case("set-dataset-name-with-path", ("ingest", *sets("dataset.name=../../x")), "dataset.name: string should match"),
    # -- command-line arguments
    Case("arg-not-an-integer", ("neighbors", "digits-00000", "--top-k", "ten"), "Invalid value for '--top-k'"),
    Case("arg-unknown-option", ("run", "--epochs", "3"), "No such option: --epochs"),
    Case("arg-unknown-command", ("trian",), "No such command 'trian'", workspace=False),
    Case("arg-missing-sql", ("query",), "Missing argument", workspace=False),
    Case("arg-k-zero", ("neighbors", "digits-00000", "-k", "0"), "--top-k: expected a positive integer, got 0"),
    Case(
        "arg-unknown-metric", ("neighbors", "digits-00000", "--metric", "manhattan"), "--metric: expected cosine or l2"
    ),
    Case("arg-unknown-row-id", ("neighbors", "digits-99999"), "id 'digits-99999' is not in the table"),
    Case("arg-out-extension", ("query", "SELECT 1", "--out", "{data}/r.txt"), "--out {data}/r.txt: expected a .csv"),
    Case("arg-resume-nothing", ("train", "--resume", *PIPELINE, *sets("train.epochs=7")), "nothing to resume"),
    # -- SQL through latent query
    Case("query-ddl", ("query", "CREATE TABLE t AS SELECT 1"), "read-only; CREATE statements are refused"),
    Case("query-write", ("query", "INSERT INTO latents SELECT * FROM latents"), "INSERT statements are refused"),
    Case("query-copy", ("query", "COPY latents TO '{ws}/copy.csv'"), "COPY statements are refused"),
    Case("query-attach", ("query", "ATTACH '{ws}/other.db' AS other"), "ATTACH statements are refused"),
    Case("query-set", ("query", "SET enable_external_access = true"), "SET statements are refused"),
    Case(
        "query-explain-analyze-copy",
        ("query", "EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{ws}/evil.csv'"),
        "COPY statements are refused",
    ),
    Case("query-two-statements", ("query", "SELECT 1; SELECT 2"), "give exactly one statement, got 2"),
    Case("query-read-etc-passwd", ("query", "SELECT * FROM read_csv('/etc/passwd')"), '"/etc/passwd"'),
    Case(
        "query-read-through-dotdot",
        ("query", "SELECT * FROM read_text('{ws}/../../../../etc/passwd')"),
        "Permission Error",
    ),
    Case("query-syntax", ("query", "SELEC 1"), "query: Parser Error"),
    Case(
        "query-unknown-column", ("query", "SELECT nope FROM latents"), 'query: Binder Error: Referenced column "nope"'
    ),
    # -- dataset files
    Case("npz-missing-files", ("ingest", *npz()), "dataset.path {data}/*.npz: no .npz files found"),
    Case(
        "npz-object-array",
        ("ingest", *npz()),
        "{data}/a.npz: array 'x' holds Python objects",
        write_npz(x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2)),
    ),
    Case("npz-not-a-zip", ("ingest", *npz()), "{data}/a.npz: not a valid .npz", write("a.npz", "x,y\n1,2\n")),
    Case(
        "npz-wrong-key",
        ("ingest", *npz()),
        "{data}/a.npz: no array 'x'",
        write_npz(features=np.zeros((4, 3), np.float32)),
    ),
    Case(
        "npz-no-rows",
        ("ingest", *npz()),
        "{data}/a.npz: array 'x' has shape (0, 4)",
        write_npz(x=np.zeros((0, 4), np.float32), y=np.zeros(0)),
    ),
    Case(
        "npz-nan-feature",
        ("run", *PIPELINE, *npz()),
        "{data}/a.npz [x]: non-finite value nan at row 7",
        write_npz(x=np.where(np.arange(40).reshape(10, 4) == 29, np.nan, 1.0).astype(np.float32), y=np.zeros(10)),
    ),
    Case(
        "idx-bad-magic",
        ("ingest", *idx()),
        "images-idx3-ubyte: not an IDX file",
        idx_files(b"\x1f\x8b" + GOOD_IDX_IMAGES[2:], GOOD_IDX_LABELS),
    ),
    Case(
        "idx-truncated",
        ("ingest", *idx()),
        "images-idx3-ubyte: IDX header promises (6, 4, 4) (96 bytes of data), the file has 50",
        idx_files(GOOD_IDX_IMAGES[:-46], GOOD_IDX_LABELS),
    ),
    Case(
        "idx-label-count",
        ("ingest", *idx()),
        "labels-idx1-ubyte: 5 labels for 6 images",
        idx_files(GOOD_IDX_IMAGES, idx_bytes(0x08, (5,), bytes(5))),
    ),
    Case(
        "idx-gzip-corrupt",
        ("ingest", *sets("dataset.source=idx", "dataset.name=bad", "dataset.path={data}/images-idx3-ubyte.gz")),
        "images-idx3-ubyte.gz: cannot be read as IDX",
        write("images-idx3-ubyte.gz", gzip.compress(GOOD_IDX_IMAGES)[:40]),
    ),
    Case("images-empty-folder", ("ingest", *folder()), "{data}/images: the folder holds no files", empty_folder),
    Case("images-no-folder", ("ingest", *folder()), "dataset.path {data}/images: not a folder"),
    Case(
        "images-corrupt-file",
        ("run", *PIPELINE, *folder()),
        "{data}/images/a/1.png: not a readable image",
        corrupt_image,
    ),
    Case(  # mixed sizes are not bad input (they are brought to one size); too many unreadable files are
        "images-too-many-unreadable",
        ("run", *PIPELINE, *folder("dataset.image.on_bad_file=skip")),
        "2 of 3 files are not readable images, more than dataset.image.max_skipped_fraction (0.1)",
        lambda env: (
            write_images(("a/0.png", (8, 8)))(env),
            write("images/a/notes.txt", "not an image")(env),
            write("images/b/readme.md", "# not an image")(env),
        ),
    ),
    Case(
        "csv-non-numeric-feature",
        ("ingest", *tabular("dataset.tabular.features=[a, b]")),
        "{data}/t.csv: feature column 'b' is not numeric",
        write("t.csv", "a,b,y\n1,2,0\n3,x,1\n"),
    ),
    Case(
        "csv-non-numeric-value-in-a-number-column",
        ("ingest", *tabular("dataset.tabular.label=y")),
        "{data}/t.csv: column 'b' holds numbers and text",
        write("t.csv", "a,b,y\n1,2,0\n3,4,1\n5,x,1\n"),
    ),
    Case(
        "csv-missing-value",
        ("run", *PIPELINE, *tabular("dataset.tabular.label=y")),
        "{data}/t.csv: missing value in column 'b' at row 1",
        write("t.csv", "a,b,y\n1,2,0\n3,,1\n5,6,1\n"),
    ),
    Case(
        "csv-infinite-value",
        ("run", *PIPELINE, *tabular("dataset.tabular.label=y")),
        "{data}/t.csv: infinite value in column 'a' at row 2",
        write("t.csv", "a,b,y\n1,2,0\n3,4,1\ninf,6,1\n"),
    ),
    Case(
        "csv-float-labels",
        ("run", *PIPELINE, *tabular("dataset.tabular.label=y")),
        "{data}/t.csv: label column 'y' must hold integers",
        write("t.csv", "a,b,y\n1,2,0.5\n3,4,1.5\n"),
    ),
    Case("csv-empty-file", ("ingest", *tabular()), "{data}/t.csv: cannot be read (Empty CSV file)", write("t.csv", "")),
    Case("csv-header-only", ("ingest", *tabular()), "{data}/t.csv: no rows", write("t.csv", "a,b\n")),
    Case(
        "csv-wrong-extension",
        ("ingest", *sets("dataset.source=tabular", "dataset.path={data}/t.txt")),
        "{data}/t.txt: expected a .csv or .parquet file",
        write("t.txt", "a,b\n1,2\n"),
    ),
    # -- text documents
    Case(
        "text-not-utf8",
        ("ingest", *sets("dataset.source=text", "dataset.path={data}/docs.csv")),
        "{data}/docs.csv: row 1: not UTF-8",  # rows counted from 0 after the header
        write("docs.csv", b'text\n"planet orbit"\n"caf\xe9 au lait"\n'),
    ),
    Case(
        "text-missing-column",
        ("ingest", *sets("dataset.source=text", "dataset.path={data}/docs.jsonl")),
        "line 1 has no field 'text' (dataset.text.column)",
        write("docs.jsonl", '{"body": "planet orbit"}\n'),
    ),
    # -- molecules (SMILES)
    Case(
        "molecules-unparsable-smiles",
        ("ingest", *sets("dataset.source=molecules", "dataset.path={data}/mols.csv")),
        "{data}/mols.csv:2: RDKit cannot parse the SMILES 'C1CC(' (set dataset.molecules.on_bad_file: skip",
        write("mols.csv", "smiles\nCCO\nC1CC(\n"),
    ),
    Case(
        "molecules-missing-column",
        ("ingest", *sets("dataset.source=molecules", "dataset.path={data}/mols.csv")),
        "{data}/mols.csv: no SMILES column 'smiles' (dataset.molecules.smiles_column)",
        write("mols.csv", "structure\nCCO\n"),
    ),
    # -- a source that changed after it was ingested or preprocessed
    Case(
        "changed-source-after-ingest",
        ("preprocess", *PIPELINE, *npz()),
        "no ingest plan for the source as it is now (new, or changed since it was ingested)",
        then(write_npz(**GOOD_NPZ), cli_step("ingest", *npz()), rewrite_npz),
    ),
    Case(
        "damaged-dataset-shard",
        ("train", *PIPELINE, *npz()),
        "part-00000.parquet: cannot be read",
        then(write_npz(**GOOD_NPZ), cli_step("ingest", *npz()), cli_step("preprocess", *npz()), truncate_dataset_shard),
        remove_npz_outputs,
    ),
    # -- models
    Case("model-uri-unknown-name", ("encode", "--model-uri", "models:/no-such-model/1"), "'models:/no-such-model/1'"),
    Case("model-uri-unknown-run", ("encode", "--model-uri", "runs:/0123456789abcdef/model"), "Run with id=0123456789"),
    Case(
        "model-input-dim-differs",
        ("encode", "--model-uri", "{data}/m16"),
        "model {data}/m16 expects inputs of 16 features but dataset",
        model_dir("m16", input_dim=16),
    ),
    Case(
        "model-weights-garbage",
        ("encode", "--model-uri", "{data}/m"),
        "{data}/m/weights.pt: cannot load weights",
        damaged_model("m", weights=b"not a checkpoint"),
    ),
    Case(
        "model-weights-pickled-code",
        ("encode", "--model-uri", "{data}/evil"),
        "{data}/evil/weights.pt: cannot load weights",
        malicious_weights,
        no_code_ran,
    ),
    Case(
        "model-config-malformed",
        ("encode", "--model-uri", "{data}/m"),
        "{data}/m/model_config.json: malformed model config",
        damaged_model("m", config="{"),
    ),
    Case(
        "model-config-unknown-model",
        ("encode", "--model-uri", "{data}/m"),
        "{data}/m/model_config.json: unknown model 'gpt'",
        damaged_model("m", config='{"name": "gpt", "config": {}}'),
    ),
    Case(
        "model-config-wrong-types",
        ("encode", "--model-uri", "{data}/m"),
        "{data}/m/model_config.json:",
        damaged_model("m", config='{"name": "vae_mlp", "config": {"input_dim": 64, "latent_dim": "two"}}'),
    ),
    Case(
        "model-uri-dot-names-no-version",
        ("encode", "--model-uri", "{model}/."),
        "'.'",
    ),
    Case(
        "model-version-collision",
        ("encode", "--model-uri", "{data}/b/model"),
        "was encoded from model {data}/a/model",
        then(
            model_dir("a/model", seed=1),
            model_dir("b/model", seed=2),
            cli_step("encode", "--model-uri", "{data}/a/model"),
        ),
        remove_table_named("model"),
    ),
    # -- latent tables
    Case(
        "table-not-a-table",
        ("neighbors", "digits-00000", "--table", "{ws}/latents"),
        "{ws}/latents: not a latent table",
    ),
    Case(
        "table-outside-the-workspace",
        ("neighbors", "digits-00000", "--table", "{data}/copy"),
        "--table {data}/copy: not in the workspace",
        lambda env: shutil.copytree(env.prepared.table, env.data / "copy"),
    ),
    Case(
        "table-path-escapes-with-dotdot",
        ("neighbors", "digits-00000", "--table", "{ws}/latents/../../copy"),
        "not in the workspace",
        lambda env: shutil.copytree(env.prepared.table, env.ws.parent / "copy", dirs_exist_ok=True),
    ),
    Case(
        "table-truncated-part-neighbors",
        ("neighbors", "digits-00000", "--table", "{ws}/latents/damaged/t"),
        "split=train/part-00000.parquet",
        copy_table("t", truncate_part),
        remove_damaged_tables,
    ),
    Case(
        "table-truncated-part-query",
        ("query", "SELECT count(*) FROM latents"),
        "split=train/part-00000.parquet",
        copy_table("t", truncate_part),
        remove_damaged_tables,
    ),
    Case(
        "table-malformed-description",
        ("report", *PIPELINE, "--table", "{ws}/latents/damaged/t"),
        "_table.json: malformed table description",
        copy_table("t", lambda t: (t / "_table.json").write_text("{")),
        remove_damaged_tables,
    ),
    Case(
        "table-truncated-part-report",
        ("report", *PIPELINE, "--table", "{ws}/latents/damaged/t"),
        "split=train/part-00000.parquet: cannot be read",
        copy_table("t", truncate_part),
        remove_damaged_tables,
    ),
]


# ---- the prepared workspace and the checks ----------------------------------------------------------------------


def _listing(root: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


def _store(rel: str) -> bool:
    """The MLflow store records failed runs too (that is its job); the catalog is derived and rebuilt by readers."""
    return rel.startswith(("mlflow.db", "mlartifacts")) or rel in ("catalog.parquet", ".catalog.lock")


# A complete ingest plan of a source that could be listed (the stage after it failed): reused by the next run.
_INGEST_PLAN = re.compile(r"raw/[0-9a-f]{16}(/plan-\d+\.json)?")


def _file_digests(root: Path) -> dict[str, str]:
    return {
        rel: hashlib.sha256((root / rel).read_bytes()).hexdigest()
        for rel in sorted(_listing(root))
        if (root / rel).is_file() and not _store(rel)
    }


def _table_digest(table: Path) -> tuple[int, str]:
    codes = load_latent_arrays(table)
    h = hashlib.sha256("\0".join(codes["id"]).encode())
    for key in ("z_mean", "z_logvar", "recon_error"):
        h.update(np.ascontiguousarray(codes[key]).tobytes())
    return len(codes["id"]), h.hexdigest()


@pytest.fixture(scope="module")
def prepared(prefect_harness, tmp_path_factory) -> Prepared:
    ws = tmp_path_factory.mktemp("bad-inputs") / "ws"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ws.parent)  # the built-in defaults, not the conf/default.yaml of the current directory
        for name, value in (
            ("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL"),
            ("MLFLOW_LOGGING_LEVEL", "WARNING"),
        ):
            mp.setenv(name, os.environ.get(name, value))
        result = run_cli(["run", *sets(*SMALL, "dask.n_workers=1", f"workspace={ws}")])
    assert result.exit_code == 0, (result.stdout[-3000:], result.stderr[-3000:])
    (table,) = (ws / "latents").glob("*/*")
    rows, digest = _table_digest(table)
    (model,) = (ws / "models").iterdir()
    uri = f"sqlite:///{ws / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("latent").experiment_id])
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)  # pipeline, train, encode, report
    return Prepared(ws, table, model, rows, digest, _file_digests(ws), [r.info.run_id for r in runs], uri)


@pytest.fixture
def quiet_cli(monkeypatch):
    """What `latent` does to its own process (environment, library loggers), undone after each case."""
    for name in ("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "MLFLOW_LOGGING_LEVEL"):
        monkeypatch.setenv(name, os.environ.get(name, "CRITICAL" if name.startswith("PREFECT") else "WARNING"))
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _assert_intact(prepared: Prepared, before: set[str]) -> None:
    ws = prepared.ws
    after = _listing(ws)
    assert not [p for p in after if any(part.startswith(".tmp-") for part in Path(p).parts)]
    assert not [p for p in before - after if not _store(p)], "the failed command deleted files"
    assert not [p for p in after - before if not (_store(p) or _INGEST_PLAN.fullmatch(p))]
    assert {rel: h for rel, h in _file_digests(ws).items() if rel in prepared.files} == prepared.files
    assert _table_digest(prepared.table) == (prepared.rows, prepared.table_digest)
    client = mlflow.MlflowClient(prepared.tracking_uri)
    assert [client.get_run(r).info.status for r in prepared.run_ids] == ["FINISHED"] * len(prepared.run_ids)
    assert str(prepared.table) in read_catalog(Workspace(ws)).column("table_path").to_pylist()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_leaves_the_workspace_as_it_was(case, prepared, tmp_path, monkeypatch, quiet_cli):
    env = Env(prepared, tmp_path / "data")
    env.data.mkdir()
    scratch = tmp_path / "tmp"  # the process's temporary files, which must not outlive the command either
    scratch.mkdir()
    monkeypatch.chdir(tmp_path)
    if case.setup is not None:
        case.setup(env)
    before = _listing(prepared.ws)
    args = [env.fill(a) for a in case.args] + (["--set", f"workspace={env.ws}"] if case.workspace else [])
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    try:
        result = run_cli(args)
    finally:
        monkeypatch.setattr(tempfile, "tempdir", None)
    try:
        line = app_error_line(result)
        assert env.fill(case.expect) in line, line
        _assert_intact(prepared, before)
        assert not [p for p in scratch.iterdir() if p.name != "dask-scratch-space"], list(scratch.iterdir())
    finally:
        if case.cleanup is not None:
            case.cleanup(env)


CASE_KIND_OF_SOURCE = {
    "image_folder": "images",
    "tabular": "csv",
    "npz": "npz",
    "idx": "idx",
    "text": "text",
    "molecules": "molecules",
}
GENERATED_SOURCES = {"digits", "shapes"}  # built in: no user file to be wrong


def test_every_file_source_the_config_accepts_has_bad_input_cases():
    """Read from the product's schema, so a new source without bad-input cases here fails this test."""
    accepted = set(typing.get_args(DatasetConfig.model_fields["source"].annotation)) - GENERATED_SOURCES
    kinds = {c.id.split("-")[0] for c in CASES}
    missing = {s for s in accepted if CASE_KIND_OF_SOURCE.get(s) not in kinds}
    assert not missing, f"sources with no bad-input case in CASES: {sorted(missing)}"
    assert len({c.id for c in CASES}) == len(CASES)


REAL_PROCESS_CASES = ["set-wrong-type", "arg-not-an-integer", "npz-object-array", "query-read-etc-passwd"]


@pytest.mark.parametrize("case_id", REAL_PROCESS_CASES)
def test_a_real_process_prints_the_same_line(case_id, prepared, tmp_path):
    """The console script in its own process: one line, exit 2, nothing from Prefect, MLflow or Dask on stderr."""
    case = next(c for c in CASES if c.id == case_id)
    env = Env(prepared, tmp_path / "data")
    env.data.mkdir()
    if case.setup is not None:
        case.setup(env)
    args = [env.fill(a) for a in case.args] + (["--set", f"workspace={env.ws}"] if case.workspace else [])
    command = latent_command()
    before = _listing(prepared.ws)
    proc = subprocess.run(
        [*command, *args],
        cwd=tmp_path,
        env=clean_env(tmp_path / ".prefect"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    assert env.fill(case.expect) in lines[0]
    _assert_intact(prepared, before)
