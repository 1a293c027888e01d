"""Helpers shared by the test modules: the repository root, the shrunk default config, the environment and the
command line of a `latent` subprocess, ports and HTTP waits for servers, and the headless browser. Test modules
import from here, never from each other."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from latent.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]
# The default pipeline, shrunk so that a whole run takes seconds (the session's `library_run` uses it too).
SMALL = [
    "train.epochs=4",
    "report.n_samples=16",
    "report.n_reconstructions=8",
    "report.tsne_perplexity=20",
    "dask.n_workers=2",
]
LATENT = Path(sys.executable).with_name("latent")
TIERS = ("unit", "integration", "e2e")  # pytest markers registered in pyproject.toml


def tier_problems(items) -> list[str]:
    """`nodeid: tiers` for every collected test that has no tier marker or more than one."""
    problems = []
    for item in items:
        tiers = [m.name for m in item.iter_markers() if m.name in TIERS]
        if len(tiers) != 1:
            problems.append(f"{item.nodeid}: {', '.join(tiers) if tiers else 'no tier'}")
    return problems


def clean_env(prefect_home: Path) -> dict[str, str]:
    """The environment for a `latent` or server subprocess: no inherited MLflow/Prefect settings, a private
    Prefect home, no telemetry, and a wide console so tables are not wrapped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env.update(
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        MLFLOW_DISABLE_TELEMETRY="true",
        COLUMNS="200",
    )
    return env


def small_config(workspace: Path | str, *extra: str) -> Config:
    """The default pipeline, shrunk so that a whole run takes seconds."""
    return load_config(ROOT / "conf" / "default.yaml", [f"workspace={workspace}", *SMALL, *extra])


def latent_command() -> list[str]:
    """The `latent` entry point of this environment, or the module when the script is not installed."""
    return [str(LATENT)] if LATENT.exists() else [sys.executable, "-m", "latent.flows.cli"]


def latent_cmd(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """`latent ARGS` as a user runs it, in `cwd`, with a private Prefect home."""
    env = clean_env(cwd / ".prefect")
    return subprocess.run(
        [*latent_command(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The single `error:` line of a command that failed on bad input (exit code 2, no traceback)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


class Interrupt:
    """A progress reporter that presses Ctrl+C after a given epoch (the trainer's own progress hook)."""

    def __init__(self, after_epoch: int) -> None:
        self.after, self.epochs = after_epoch, 0

    def start(self, key, description, total):
        pass

    def advance(self, key, steps=1, info=""):
        if key == "train" and info:
            self.epochs += steps
            if self.epochs == self.after:
                raise KeyboardInterrupt

    def finish(self, key):
        pass


def app_error_line(result) -> str:
    """The single `error:` line of a command run in this process (typer's CliRunner) that failed on bad input:
    exit code 2, one line on stderr, no traceback (`one_line_error` is the same check for a real process)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, (result.exit_code, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Wait until `url` answers 200, failing early if the server process `proc` exits."""
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode}")
        if time.time() > deadline:
            raise TimeoutError(url)
        time.sleep(1)


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str | None:
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)


def browser_unavailable(reason: str) -> None:
    """Skip a browser test, or fail it under LATENT_REQUIRE_BROWSER=1 (CI sets it)."""
    if os.environ.get("LATENT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and LATENT_REQUIRE_BROWSER=1 requires the browser tests to run")
    pytest.skip(f"{reason} (install Debian's chromium; set LATENT_REQUIRE_BROWSER=1 to make this a failure)")
