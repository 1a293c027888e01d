"""The built wheel, installed non-editable into a fresh virtual environment and run from another directory."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT, clean_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("packaging")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp.glob("latent-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The fresh environment borrows this one's dependencies (torch and the rest) instead of downloading them; a
    # .pth line adds the directory to sys.path without running the .pth files in it (so not our editable install).
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return {"wheel": wheel, "venv": venv, "site": site, "cwd": elsewhere}


def run_in(installed: dict[str, Path], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*args],
        cwd=installed["cwd"],
        env=clean_env(installed["cwd"] / ".prefect"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_wheel_installs_no_generic_top_level_modules(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"latent"}
    assert "latent/flows/cli.py" in names and "latent/tasks/stages.py" in names
    assert {"latent/conf/default.yaml", "latent/conf/digits-conv.yaml", "latent/conf/transfer-digits.yaml"} <= set(
        names
    )
    assert {"latent/templates/report.html.j2", "latent/templates/latent_map.js"} <= set(names)
    assert "latent/analysis/metrics/mig.py" in names and "latent/explore/grids.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "latent = latent.flows.cli:main" in zipfile.ZipFile(installed["wheel"]).read(entry_points).decode()


def test_installed_package_runs_from_another_directory(installed):
    python = str(installed["venv"] / "bin" / "python")
    proc = run_in(installed, python, "-c", "import latent, latent.flows.cli; print(latent.__file__)")
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(installed["site"])  # the wheel's copy, not the checkout
    page = "from latent.page import Section, render_html; print(render_html('t', [Section('a', 'A & B', '<p>x</p>')]))"
    proc = run_in(installed, python, "-c", page)
    assert proc.returncode == 0, proc.stderr
    assert "<h2>A &amp; B</h2>" in proc.stdout and "<p>x</p>" in proc.stdout  # the installed template renders
    proc = run_in(installed, python, "-c", "import flows")
    assert proc.returncode == 1 and "No module named 'flows'" in proc.stderr

    latent = str(installed["venv"] / "bin" / "latent")
    proc = run_in(installed, latent, "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == "latent 0.1.0", proc.stderr
    proc = run_in(installed, latent, "--help")
    assert proc.returncode == 0 and "neighbors" in proc.stdout and "--install-completion" in proc.stdout


def test_installed_presets_and_the_deployment_spec_are_usable_by_name(installed):
    latent = str(installed["venv"] / "bin" / "latent")
    workspace = installed["cwd"] / "ws"
    proc = run_in(installed, latent, "tables", "--config", "digits-conv", "--set", f"workspace={workspace}")
    assert proc.returncode == 0, proc.stderr
    assert "no latent tables yet" in proc.stdout
    proc = run_in(installed, latent, "tables", "--config", "no-such-preset")
    assert proc.returncode == 2 and "no-such-preset: config file not found" in proc.stderr

    python = str(installed["venv"] / "bin" / "python")
    script = (
        "from latent.config import load_config as c; print(c('digits-conv').model.name, c('default.yaml').workspace)"
    )
    proc = run_in(installed, python, "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["vae_conv", "./workspace"]  # the preset, through `extends: default.yaml`
    (installed["cwd"] / "prefect.yaml").write_text((ROOT / "prefect.yaml").read_text())  # names presets only
    script = "from latent.deployment_spec import load_deployment_spec as s; print([d.name for d in s('prefect.yaml')."
    script += "deployments])"
    proc = run_in(installed, python, "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert "nightly" in proc.stdout and "weekly-transfer" in proc.stdout
