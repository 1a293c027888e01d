"""Security: no pickle from data files, servers on loopback, paths that stay inside their roots, a query sandbox
that neither writes nor reads outside the workspace.

Two kinds of check: a scan of the source (every `torch.load` with weights_only=True, no unpickling loaders at
all), and behaviour (a pickled payload in an .npz or a checkpoint is refused without running; links out of an
image folder are not followed; servers listen on 127.0.0.1).
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from latent.config import DaskConfig, EncodeConfig, load_config
from latent.data import ingest, preprocess
from latent.data.dataset import write_dataset_table
from latent.encode import encode
from latent.errors import ConfigError, DataError, LatentError
from latent.models import create_model
from latent.models.io import load_model_files, save_model_files
from latent.query import neighbors, run_query
from latent.workspace import Workspace
from tests.helpers import ROOT

PROJECT_DIRS = ("latent", "flows", "tasks", "benchmarks", "tests")
LIBRARY_DIRS = ("latent", "flows", "tasks")


# ---- the source ------------------------------------------------------------------------------------------------


def _sources(dirs: tuple[str, ...]) -> list[Path]:
    files = [p for d in dirs for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 20
    return sorted(files)


def _dotted(node: ast.AST) -> str:
    """`mlflow.pyfunc.load_model` for the expression it names; '' if it is not a plain dotted name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _calls(path: Path) -> list[tuple[int, str, ast.Call]]:
    tree = ast.parse(path.read_text(), str(path))
    return [(n.lineno, _dotted(n.func), n) for n in ast.walk(tree) if isinstance(n, ast.Call)]


@pytest.mark.unit
def test_no_source_file_allows_pickle_in_numpy():
    offenders = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in _sources(PROJECT_DIRS)
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"allow_pickle\s*=\s*True", line)
    ]
    assert offenders == []


@pytest.mark.unit
def test_every_torch_load_is_weights_only():
    loads, offenders = 0, []
    for path in _sources(PROJECT_DIRS):
        assert not re.search(r"from torch(\.serialization)? import .*\bload\b", path.read_text()), path
        for line, name, call in _calls(path):
            if name == "torch.load":
                loads += 1
                safe = any(
                    k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                    for k in call.keywords
                )
                if not safe:
                    offenders.append(f"{path.relative_to(ROOT)}:{line}")
    assert loads >= 3  # the model loader and the two checkpoint loads in training, at least
    assert offenders == []


UNPICKLING = {
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "cloudpickle.load",
    "cloudpickle.loads",
    "dill.load",
    "dill.loads",
    "joblib.load",
    "pd.read_pickle",
    "pandas.read_pickle",
    "mlflow.pyfunc.load_model",
    "mlflow.pytorch.load_model",
    "mlflow.sklearn.load_model",
    "torch.jit.load",
    "yaml.load",
    "yaml.unsafe_load",
    "yaml.full_load",
}


@pytest.mark.unit
def test_the_library_never_unpickles_or_loads_code_from_files():
    offenders = [
        f"{p.relative_to(ROOT)}:{line} {name}"
        for p in _sources(LIBRARY_DIRS)
        for line, name, _ in _calls(p)
        if name in UNPICKLING
    ]
    imports = [
        f"{p.relative_to(ROOT)}: imports {alias.name}"
        for p in _sources(LIBRARY_DIRS)
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
        if (getattr(node, "module", None) or alias.name).split(".")[0] in ("cloudpickle", "dill", "joblib")
        or (getattr(node, "module", None) == "pickle" and alias.name in ("load", "loads", "Unpickler"))
    ]
    assert offenders == [] and imports == []


# ---- pickled payloads in data files and checkpoints --------------------------------------------------------------


class _Payload:
    """Unpickling this calls os.mkdir(target): if the directory appears, code from the file ran."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def _npz_config(tmp_path: Path, *more: str):
    return load_config(
        None, [f"workspace={tmp_path / 'ws'}", "dataset.source=npz", f"dataset.path={tmp_path}/*.npz", *more]
    )


@pytest.mark.unit
@pytest.mark.parametrize("where", ["x", "y"])
def test_an_npz_with_a_pickled_object_array_is_refused_without_running_it(tmp_path, where):
    marker = tmp_path / "pwned"
    payload = np.array([_Payload(marker), None], dtype=object)
    arrays = {"x": np.zeros((2, 3), np.float32), "y": np.zeros(2, np.int64), where: payload}
    np.savez(tmp_path / "a.npz", **arrays)
    cfg = _npz_config(tmp_path)
    with pytest.raises(DataError, match=rf"a\.npz: array '{where}' holds Python objects"):
        ingest(cfg.dataset, Workspace.at(cfg.workspace))
    assert not marker.exists()
    assert not list((tmp_path / "ws").rglob("*.parquet"))


def _model_dir(path: Path) -> Path:
    model = create_model("vae_mlp", input_dim=8, latent_dim=2, hidden_dims=(4,))
    save_model_files(model.eval(), path)
    return path


def _torch_file_with_payload(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"encoder.0.weight": _Payload(marker)}, buffer)
    return buffer.getvalue()


@pytest.mark.unit
@pytest.mark.parametrize("fmt", ["torch-zip", "raw-pickle"])
def test_a_checkpoint_carrying_pickled_code_is_refused_without_running_it(tmp_path, fmt):
    marker = tmp_path / "pwned"
    directory = _model_dir(tmp_path / "model")
    data = _torch_file_with_payload(marker) if fmt == "torch-zip" else pickle.dumps(_Payload(marker))
    (directory / "weights.pt").write_bytes(data)
    with pytest.raises(DataError, match=r"weights\.pt: cannot load weights"):
        load_model_files(directory)
    assert not marker.exists()


# ---- servers and clusters listen on loopback ------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(("args", "host"), [([], "127.0.0.1"), (["--host", "0.0.0.0"], "0.0.0.0")])
def test_latent_ui_binds_loopback_unless_told_otherwise(tmp_path, monkeypatch, args, host):
    """The command `latent ui` starts (tests/test_cli.py starts it for real and checks the listening socket)."""
    import latent.flows.cli

    started: list[list[str]] = []
    monkeypatch.setattr(latent.flows.cli, "run_server", lambda cmd: started.append(cmd) or 0)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(latent.flows.cli.app, ["ui", "--set", f"workspace={tmp_path / 'ws'}", *args])
    assert result.exit_code == 0, result.stderr
    (cmd,) = started
    assert cmd[cmd.index("--host") + 1] == host
    assert f"http://{host}:5000" in result.stdout


def _listening(port: int) -> list[str]:
    if shutil.which("ss") is None:
        pytest.skip("no ss command to list listening sockets")
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if line.strip()]


@pytest.mark.integration
def test_the_local_dask_cluster_listens_on_loopback_only():
    from latent.parallel import dask_client

    with dask_client(DaskConfig(n_workers=1)) as client:
        info = client.scheduler_info()
        addresses = [client.scheduler.address, *info["workers"]]
        addresses += [w["nanny"] for w in info["workers"].values() if w.get("nanny")]
        assert all(a.startswith("tcp://127.0.0.1:") for a in addresses), addresses
        ports = [int(a.rsplit(":", 1)[1]) for a in addresses]
        ports += list(info.get("services", {}).values())  # the dashboard, which dask starts even when not asked
        for port in ports:
            assert {a.rsplit(":", 1)[0] for a in _listening(port)} == {"127.0.0.1"}, port


@pytest.mark.integration
def test_prefects_in_process_server_listens_on_loopback_only(prefect_harness):
    """The temporary server the harness starts is the one `latent` starts when no Prefect server is configured."""
    from prefect.settings import PREFECT_API_URL, get_current_settings

    url = PREFECT_API_URL.value()
    assert url.startswith("http://127.0.0.1:"), url
    port = int(url.split(":")[2].split("/")[0])
    assert {a.rsplit(":", 1)[0] for a in _listening(port)} == {"127.0.0.1"}
    runner = get_current_settings().runner.server  # the webserver `latent serve` could start: off, or local
    assert not runner.enable or runner.host in ("localhost", "127.0.0.1")


# ---- paths stay inside their roots ------------------------------------------------------------------------------


def _png(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


@pytest.fixture
def linked_folder(tmp_path) -> tuple[Path, Path]:
    """images/: two files, a link to one of them (inside), a link out of the folder, a broken link, and a link to
    a folder outside."""
    images, outside = tmp_path / "images", tmp_path / "outside"
    _png(images / "a" / "0.png", 10)
    _png(images / "a" / "1.png", 20)
    _png(outside / "secret.png", 99)
    _png(outside / "more" / "2.png", 99)
    (images / "b").mkdir()
    (images / "b" / "alias.png").symlink_to("../a/0.png")
    (images / "a" / "escape.png").symlink_to(outside / "secret.png")
    (images / "a" / "broken.png").symlink_to(tmp_path / "nowhere.png")
    (images / "c").symlink_to(outside / "more", target_is_directory=True)
    return images, outside


def _folder_config(tmp_path: Path, images: Path, *more: str):
    return load_config(
        None,
        [f"workspace={tmp_path / 'ws'}", "dataset.source=image_folder", f"dataset.path={images}", *more],
    )


@pytest.mark.integration
def test_a_link_out_of_an_image_folder_is_refused(tmp_path, linked_folder):
    images, _ = linked_folder
    (images / "a" / "broken.png").unlink()
    cfg = _folder_config(tmp_path, images)
    with pytest.raises(DataError, match=r"a/escape\.png: a link to .*outside/secret\.png, outside the folder"):
        ingest(cfg.dataset, Workspace.at(cfg.workspace))
    (images / "a" / "escape.png").unlink()
    (images / "a" / "broken.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(DataError, match=r"a/broken\.png: a broken link"):
        ingest(cfg.dataset, Workspace.at(cfg.workspace))


@pytest.mark.integration
def test_with_skip_links_out_of_the_folder_are_quarantined_and_links_inside_are_read(tmp_path, linked_folder):
    images, _ = linked_folder
    cfg = _folder_config(tmp_path, images, "dataset.image.on_bad_file=skip", "dataset.image.max_skipped_fraction=0.5")
    ws = Workspace.at(cfg.workspace)
    ing = ingest(cfg.dataset, ws)
    pre = preprocess(ing.raw_path, ing.fingerprint, cfg.preprocess, DaskConfig(n_workers=1), ws)
    ids = sorted(
        i for shard in Path(pre.dataset_path).glob("part-*.parquet") for i in pq.read_table(shard)["id"].to_pylist()
    )
    assert ids == ["a/0.png", "a/1.png", "b/alias.png"]  # c/ (a link to a folder) is not followed at all
    quarantine = pq.read_table(Path(pre.dataset_path) / "quarantine.parquet").to_pylist()
    reasons = {Path(q["file"]).name: q["reason"] for q in quarantine}
    assert set(reasons) == {"escape.png", "broken.png"}
    assert "outside the folder" in reasons["escape.png"]


@pytest.mark.unit
@pytest.mark.parametrize("name", [".", "..", "a/b", "../x", "", "-x"])
def test_workspace_directories_are_plain_names(tmp_path, name):
    ws = Workspace.at(tmp_path / "ws")
    with pytest.raises(DataError, match="cannot name a directory in the workspace"):
        ws.latent_dir("d1", name)
    with pytest.raises(DataError, match="cannot name a directory in the workspace"):
        ws.dataset_dir(name)


@pytest.mark.unit
def test_a_dataset_name_cannot_be_a_path():
    with pytest.raises(ConfigError, match=r"dataset\.name: string should match pattern"):
        load_config(None, ["dataset.name=../../etc"])


@pytest.fixture(scope="module")
def table_workspace(tmp_path_factory) -> tuple[Workspace, Path]:
    """A workspace with one small latent table (no MLflow, no Dask)."""
    root = tmp_path_factory.mktemp("security")
    ws = Workspace.at(root / "ws")
    x = np.random.default_rng(0).random((200, 8), dtype=np.float32)
    info = write_dataset_table(ws, "toy", x, labels=np.arange(200) % 2)
    model = _model_dir(root / "model")
    result = encode(info.path, str(model), "toy-model", EncodeConfig(batch_size=64), ws, None)
    return ws, Path(result.table_path)


@pytest.mark.integration
def test_a_table_path_cannot_escape_the_workspace(table_workspace, tmp_path):
    ws, table = table_workspace
    outside = tmp_path / "copy"
    shutil.copytree(table, outside)
    row = "toy-00000000"
    assert len(neighbors(ws, row, 3, "l2", table)) == 3
    dotdot = ws.root / "latents" / os.path.relpath(outside, ws.root / "latents")  # latents/../../../copy
    link = ws.root / "latents" / "link"
    link.symlink_to(outside, target_is_directory=True)
    try:
        for path in (outside, dotdot, link):
            with pytest.raises(LatentError, match="not in the workspace"):
                neighbors(ws, row, 3, "l2", path)
    finally:
        link.unlink()


@pytest.mark.integration
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('{ws}/../../../../../etc/passwd')",
        "SELECT * FROM read_text('{ws}/escape')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')",
    ],
)
def test_query_cannot_read_outside_the_workspace(table_workspace, sql):
    ws, _ = table_workspace
    link = ws.root / "escape"
    link.symlink_to("/etc/hostname")
    try:
        with pytest.raises(LatentError, match="Permission Error"):
            run_query(ws, sql.format(ws=ws.root))
    finally:
        link.unlink()


@pytest.mark.integration
@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT 1 AS a) TO '{ws}/written.csv'",
        "EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{ws}/written.csv'",
        "EXPLAIN (ANALYZE) COPY (SELECT 1 AS a) TO '{ws}/written.csv'",
        "/* x */ EXPLAIN /* y */ ANALYZE COPY latents TO '{ws}/written.csv'",
        "EXPORT DATABASE '{ws}/written'",
        "ATTACH '{ws}/written.db' AS w",
        "CREATE TABLE t AS SELECT 1",
        "SET allowed_directories = ['/']",
        "INSTALL httpfs",
    ],
)
def test_query_cannot_write_or_change_its_sandbox(table_workspace, sql):
    ws, _ = table_workspace
    before = sorted(p.name for p in ws.root.iterdir())
    with pytest.raises(LatentError, match="statements are refused"):
        run_query(ws, sql.format(ws=ws.root))
    assert sorted(p.name for p in ws.root.iterdir()) == before


@pytest.mark.integration
def test_query_still_reads_the_workspace(table_workspace):
    ws, _ = table_workspace
    assert run_query(ws, "SELECT count(*) AS n FROM latents").column("n").to_pylist() == [200]
    assert run_query(ws, "EXPLAIN ANALYZE SELECT count(*) FROM latents").num_rows >= 1
