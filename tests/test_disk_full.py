"""Encoding into a file system that fills up: one clear error line, the previous table complete and readable,
nothing left half-written, and the next run (with space again) succeeds.

The workspace's `latents/` is a small tmpfs (a real file system that returns ENOSPC), so this needs root and a
kernel that lets the test mount one; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from latent.flows.cli import app
from typer.testing import CliRunner

from latent.models import create_model
from latent.models.io import save_model_files
from latent.tables import list_tables, load_latent_arrays, read_catalog
from latent.workspace import Workspace

pytestmark = pytest.mark.e2e

TMPFS_SIZE = 512 * 1024  # the digits' table with k=2 takes ~60 kB; with k=64 ~1 MB


def _run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def _one_error_line(result) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, (result.exit_code, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _digest(table: Path) -> tuple[int, str]:
    codes = load_latent_arrays(table)
    h = hashlib.sha256("\0".join(codes["id"]).encode())
    for key in ("z_mean", "z_logvar", "recon_error"):
        h.update(np.ascontiguousarray(codes[key]).tobytes())
    return len(codes["id"]), h.hexdigest()


def _leftovers(ws: Path) -> list[str]:
    return [str(p) for p in ws.rglob("*") if p.name.startswith(".tmp-")]


def _used(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


@pytest.fixture
def small_latents(tmp_path, monkeypatch):
    """A workspace whose latents/ is a tmpfs of TMPFS_SIZE bytes, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    ws = tmp_path / "ws"
    latents = ws / "latents"
    latents.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(latents)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    for name, value in (("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL"), ("MLFLOW_LOGGING_LEVEL", "WARNING")):
        monkeypatch.setenv(name, os.environ.get(name, value))
    monkeypatch.chdir(tmp_path)  # the built-in defaults, not whatever conf/default.yaml the current directory has
    try:
        yield ws, latents
    finally:
        if subprocess.run(["umount", str(latents)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(latents)], capture_output=True)


def _model(directory: Path, latent_dim: int) -> str:
    torch.manual_seed(latent_dim)
    model = create_model("vae_mlp", input_dim=64, latent_dim=latent_dim, hidden_dims=(32,))
    save_model_files(model.eval(), directory)
    return str(directory)


def test_a_full_disk_fails_cleanly_and_keeps_the_previous_table(prefect_harness, small_latents, tmp_path):
    ws, latents = small_latents
    workspace = ["--set", f"workspace={ws}", "--set", "dask.n_workers=1"]
    small, large = _model(tmp_path / "small", 2), _model(tmp_path / "large", 64)

    for command in (["ingest"], ["preprocess"], ["encode", "--model-uri", small]):
        result = _run(*command, *workspace)
        assert result.exit_code == 0, (command, result.stderr[-2000:])
    (first,) = list_tables(Workspace(ws))
    before = _digest(first.path)
    used_by_first = _used(latents)
    assert before[0] == 1797

    # a bigger model's table does not fit: ENOSPC half-way through writing it
    line = _one_error_line(_run("encode", "--model-uri", large, *workspace))
    assert "no space left on the device" in line and "nothing was published" in line, line
    assert str(latents) in line
    assert _digest(first.path) == before
    assert [t.path for t in list_tables(Workspace(ws))] == [first.path]
    assert read_catalog(Workspace(ws)).column("table_path").to_pylist() == [str(first.path)]
    assert not _leftovers(ws)
    assert _used(latents) == used_by_first  # the partial table's space was given back

    # replacing the table on a disk without room for a second copy: the old version stays, whole
    filler = latents / "filler"
    free = os.statvfs(latents).f_bavail * os.statvfs(latents).f_frsize
    filler.write_bytes(b"\0" * max(free - used_by_first // 2, 0))
    line = _one_error_line(_run("encode", "--model-uri", small, "--force", *workspace))
    assert "no space left on the device" in line, line
    assert _digest(first.path) == before
    assert not _leftovers(ws)

    # with space again, the same command succeeds and the table is the same
    filler.unlink()
    result = _run("encode", "--model-uri", small, "--force", *workspace)
    assert result.exit_code == 0, result.stderr[-2000:]
    assert _digest(first.path) == before
    assert not _leftovers(ws)
