"""Which Prefect server a command's flows talk to, and the server processes a command starts and stops. Prefect
reads PREFECT_API_URL when it is imported, so the choice is made here, before anything imports Prefect (this
module does not)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

from latent.errors import LatentError

DEFAULT_SPEC = Path("prefect.yaml")  # the one deployment spec, as `prefect deploy` finds it


def use_prefect_server(api_url: str | None) -> None:
    """orchestration.prefect_api_url (else PREFECT_API_URL, else Prefect's temporary server) for this process."""
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url


def spec_file(spec: Path | None) -> Path:
    """The deployment spec `latent serve` runs: the given file, else prefect.yaml in the working directory (where
    `prefect deploy` finds it too)."""
    return spec if spec is not None else DEFAULT_SPEC


def spec_prefect_server(spec: Path) -> str | None:
    """The one Prefect server the deployments of a spec name in their configs (None: none names one); a
    LatentError when they name different servers, since one process serves them all."""
    from latent.config import load_config
    from latent.deployment_spec import load_deployment_spec

    deployments = load_deployment_spec(spec, check_configs=False).deployments
    api_urls = {
        load_config(d.parameters.config_file, d.parameters.overrides).orchestration.prefect_api_url for d in deployments
    } - {None}
    if len(api_urls) > 1:
        raise LatentError(f"{spec}: deployments name different Prefect servers ({sorted(api_urls)})")
    return next(iter(api_urls), None)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_server(cmd: list[str], grace_s: float = 20.0) -> int:
    """Run a server in its own process group until it ends or this process is told to stop (Ctrl+C, or SIGTERM /
    SIGHUP from systemd, Docker or a process manager); then the whole group, its workers too, is stopped and the
    port freed. `mlflow server` runs uvicorn as a child of its own and does not pass SIGTERM on, so replacing
    this process with it (exec) would still leave uvicorn holding the port; the group is signalled instead.
    Returns the server's exit code; a stop signal other than Ctrl+C ends this process by that same signal."""
    import subprocess

    received: list[int] = []
    server = subprocess.Popen(cmd, process_group=0)

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        _signal_group(server.pid, signum if len(received) == 1 else signal.SIGKILL)

    previous = {sig: signal.signal(sig, forward) for sig in _STOP_SIGNALS}
    try:
        code = server.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_group(server, grace_s)
    if not received:
        return code
    if received[0] == signal.SIGINT:
        raise KeyboardInterrupt
    signal.signal(received[0], signal.SIG_DFL)
    os.kill(os.getpid(), received[0])
    return 128 + received[0]


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _stop_group(server: Any, grace_s: float) -> None:
    """The server has exited or been signalled: whatever of its process group is left gets SIGTERM, then
    SIGKILL after grace_s."""
    import psutil

    def members() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter():
            try:
                if os.getpgid(proc.pid) == server.pid and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (OSError, psutil.Error):
                continue
        return found

    if server.poll() is None:
        _signal_group(server.pid, signal.SIGTERM)
        try:
            server.wait(grace_s)
        except Exception:
            _signal_group(server.pid, signal.SIGKILL)
            server.wait()
    left = members()
    if left:
        _signal_group(server.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(left, timeout=grace_s)
        if alive:
            _signal_group(server.pid, signal.SIGKILL)
            psutil.wait_procs(alive, timeout=5)


def stop_children(grace_s: float = 10.0) -> None:
    """Processes this one started and left running (e.g. the ephemeral Prefect server of `latent serve`)."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            continue
