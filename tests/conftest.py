"""Shared fixtures: real components everywhere (local Dask cluster, MLflow on SQLite, Prefect's test harness)."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.pop("MLFLOW_TRACKING_URI", None)
# OpenMP threads (torch, openTSNE) that wait for work sleep instead of spinning: the suite runs Dask workers,
# Prefect's server and `latent` subprocesses beside each other on 2 cores, and spinning threads took the cores
# from them (measured on a loaded 2-core machine: a small training 64 s -> 20 s, a report 122 s -> 40 s). Set
# before anything loads OpenMP; subprocesses inherit it. It changes no result, only how idle threads wait.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dataclasses import dataclass

import pytest

from latent.config import Config
from tests.helpers import CHROMIUM_FLAGS, browser_unavailable, chromium, small_config, tier_problems


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-fingerprint",
        action="store_true",
        help="rewrite tests/data/default_fingerprint.json from this run instead of comparing against it",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test belongs to exactly one tier (unit, integration or e2e), so that `make test-fast` (the unit tier)
    is a known set and a new test file cannot escape the tiers."""
    problems = tier_problems(items)
    if problems:
        raise pytest.UsageError(
            "every test needs exactly one tier marker (pytestmark = pytest.mark.unit | integration | e2e at the top "
            "of its module, or one on the test itself):\n  " + "\n  ".join(problems[:20])
        )


@dataclass
class LibraryRun:
    """Outputs of one run of every stage through the library (no Prefect), shared by the stage tests."""

    cfg: Config
    workspace: object
    tracking: object
    ingest: object
    preprocess: object
    train: object
    encode: object
    report: object


@pytest.fixture(scope="session")
def library_run(tmp_path_factory: pytest.TempPathFactory) -> LibraryRun:
    from latent.data import ingest, preprocess
    from latent.encode import encode
    from latent.report import build_report
    from latent.tracking import setup_tracking
    from latent.train import train
    from latent.workspace import Workspace

    cfg = small_config(tmp_path_factory.mktemp("library") / "ws")
    ws = Workspace.at(cfg.workspace)
    tracking = setup_tracking(cfg.tracking, ws)
    ing = ingest(cfg.dataset, ws)
    pre = preprocess(ing.raw_path, ing.fingerprint, cfg.preprocess, cfg.dask, ws)
    tr = train(pre.dataset_path, cfg.model, cfg.train, ws, tracking, cfg.tracking.registered_model)
    enc = encode(pre.dataset_path, tr.model_uri, tr.model_version, cfg.encode, ws, tracking, tr.run_id)
    rep = build_report(enc.table_path, pre.dataset_path, tr.model_uri, cfg.report, ws, tracking)
    return LibraryRun(cfg, ws, tracking, ing, pre, tr, enc, rep)


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def flow_run(prefect_harness, tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, object]:
    """One small pipeline flow run (config, PipelineResult), shared by the flow tests and the transfer tests: one
    pipeline fewer than a fixture each. Neither registers another model version or moves the champion alias (the
    transfer flow's models are not registered), so what one asserts about this run the other leaves true.
    Tests that change or force the pipeline (tests/test_caching.py) run their own."""
    from latent.flows.pipeline import pipeline_flow

    cfg = small_config(
        tmp_path_factory.mktemp("flow") / "ws",
        "transfer.adapt_epochs=2",
        "transfer.label_budgets=[10, 100]",
        "transfer.probe_repeats=1",
    )
    return cfg, pipeline_flow(cfg.model_dump(mode="json"))


@pytest.fixture
def latent_app(monkeypatch: pytest.MonkeyPatch):
    """`latent ARGS` in this process, through the CLI app as the console script runs it (typer's CliRunner, stdout
    and stderr apart), in the test's current directory; what a command does to its process (environment
    variables, library loggers' levels) is undone after the test. For tests of a command's output and files, not
    of the process (those use tests.helpers.latent_cmd: a process pays seconds of imports and start-up)."""
    from latent.flows.cli import app
    from typer.testing import CliRunner

    environ = dict(os.environ)
    monkeypatch.setenv("COLUMNS", "200")  # a wide console, as tests.helpers.clean_env gives a subprocess
    loggers = ("latent", "py.warnings", "mlflow", "alembic", "distributed", "torch")
    levels = {name: logging.getLogger(name).level for name in loggers}
    yield lambda *args: CliRunner().invoke(app, list(args), catch_exceptions=True)
    os.environ.clear()
    os.environ.update(environ)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium driven by Playwright (never a browser Playwright downloads)."""
    executable = chromium()
    if executable is None:
        browser_unavailable("no chromium binary on PATH or at /usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()
