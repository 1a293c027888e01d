"""The `latent` command line: each stage alone, the whole pipeline, the analyst commands and the MLflow UI.

Each command parses its options, calls one library or flow function and hands the result to `flows/display.py`,
which prints it; the `command` decorator frames every command once (quiet environment, `--debug`, one `error:`
line and its exit code), and `_with_progress` shows a flow's progress bars.

Imports are lazy on purpose: `latent tables`, `query` and `neighbors` load the config, pyarrow and DuckDB and
nothing else (no torch, MLflow, Prefect or Dask), so they answer in a fraction of a second
(benchmarks/cli.py measures it).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from latent.flows import display
from latent.flows.display import err, out
from latent.flows.servers import run_server, spec_file, spec_prefect_server, stop_children, use_prefect_server
from typer.core import TyperGroup

from latent.errors import LatentError

if TYPE_CHECKING:
    from latent.config import Config

EXIT_BAD_INPUT = 2  # an `error:` line about the config, the data or the command line
EXIT_INTERRUPTED = 128 + signal.SIGINT  # Ctrl+C, as shells report it


class _OneLineUsageErrors(TyperGroup):
    """Usage errors (an unknown option or command, a value of the wrong type, a missing argument) print as one
    `error:` line with exit code 2, like every other bad input, instead of a usage box; Ctrl+C prints one line and
    exits with 130."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:  # parsing fails before any command runs, so a usage error here has done nothing yet
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except KeyboardInterrupt:
            _interrupted()
        except typer.Abort:
            err.print("Aborted.")
            sys.exit(1)
        except Exception as exc:
            ctx = getattr(exc, "ctx", None)
            if ctx is None or not hasattr(exc, "format_message"):
                raise
            if type(exc).__name__ == "NoArgsIsHelpError":  # `latent` alone: the help, as before
                return super().main(args, prog_name, complete_var, standalone_mode=True, **extra)
            message = " ".join(exc.format_message().split())
            display.error(f"{message} (see `{ctx.command_path} --help`)")
            sys.exit(getattr(exc, "exit_code", EXIT_BAD_INPUT))
        if code == EXIT_INTERRUPTED:  # typer turns KeyboardInterrupt into exit code 130
            _interrupted()
        sys.exit(code if isinstance(code, int) else 0)


def _interrupted() -> None:
    """Ctrl+C: one line, the processes this one started are stopped, exit 130. Without waiting for the
    interpreter's exit handlers: a terminal's Ctrl+C also stopped Prefect's temporary server, and Prefect's
    handlers would wait for it, for minutes. Nothing half-written is visible (every write publishes atomically)."""
    err.print("interrupted (Ctrl+C); nothing half-written was published", highlight=False)
    stop_children()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


app = typer.Typer(
    cls=_OneLineUsageErrors,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="latent: learned latent spaces and analyst-ready latent tables from raw datasets.",
)


def _version(value: bool) -> None:
    if value:
        import latent

        out.print(f"latent {latent.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """latent: learned latent spaces and analyst-ready latent tables from raw datasets."""


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML config file, or a shipped preset by name (digits-conv, shapes-vae, ...); "
        "default: conf/default.yaml if present, else built-in defaults.",
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a key, e.g. --set train.epochs=5 (repeatable)."),
]
DebugOpt = Annotated[bool, typer.Option("--debug", "-d", help="Show full tracebacks and all library logs.")]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Recompute stages even if their inputs are unchanged.")]
LimitOpt = Annotated[int, typer.Option("--limit", "-n", help="Rows to show in the terminal.")]
TopKOpt = Annotated[int, typer.Option("--top-k", "-k", help="How many neighbours.")]


def _quiet_environment(debug: bool) -> None:
    """Embedded defaults that need no network, and a console that shows our progress, not library chatter."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # Prefect's 20 s default for its in-process server is too short when several runs start together on a busy
    # machine: measured 3 runs on 2 loaded cores, all timed out.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # What the library says (`latent.*` loggers) and Python warnings go into the Prefect run's log, so the Prefect
    # UI shows what a run did; outside a run they are not sent anywhere.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "latent,py.warnings")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    _setup_logging(debug)
    if debug:
        return
    # Prefect still sends every log to its API (visible in the Prefect UI); only the console copy is muted, so a
    # failure prints one line rather than a task traceback.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # model downloads: no bars on stderr
    for name in ("mlflow", "alembic", "distributed", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _setup_logging(debug: bool) -> None:
    """`latent.*` loggers at INFO (DEBUG with --debug). Warnings become log records (`py.warnings`): on the
    console only with --debug, in the Prefect run's log always; nothing filters them away process-wide."""
    logging.getLogger("latent").setLevel(logging.DEBUG if debug else logging.INFO)
    logging.captureWarnings(True)
    warnings_log = logging.getLogger("py.warnings")
    if debug:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        warnings_log.propagate = True
    else:
        warnings_log.propagate = False
        if not any(isinstance(h, logging.NullHandler) for h in warnings_log.handlers):
            warnings_log.addHandler(logging.NullHandler())  # no handler at all would mean Python's last resort


def _quiet_mlflow_prints(debug: bool) -> None:
    """MLflow prints some events itself, bypassing logging ("Successfully registered model ...", "Created version
    ..."); they would land between our progress bars. Off for this process unless --debug (the library logs the
    registration itself). MLflow's own nesting counter is entered, not `disable_logging()`: its log_model turns
    the events back on when its inner silencing ends, unless an outer one is still held."""
    if debug:
        return
    from mlflow.utils.autologging_utils.logging_and_warnings import MlflowEventsAndWarningsBehaviorGlobally

    MlflowEventsAndWarningsBehaviorGlobally(
        disable_event_logs=True, disable_warnings=False, reroute_warnings=False
    ).__enter__()  # held until the process ends


def _config_file(config: Path | None) -> Path | None:
    """--config, else conf/default.yaml if present, else None (the built-in defaults)."""
    from latent.config_files import DEFAULT_CONFIG_PATH

    return config if config is not None else (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None)


def _load(config: Path | None, sets: list[str] | None, check_models: bool = True) -> Config:
    from latent.config import load_config

    return load_config(_config_file(config), sets or [], check_models=check_models)


def _fail(exc: BaseException, debug: bool) -> None:
    if debug:
        raise exc
    message = " ".join(str(exc).split())  # one line
    if isinstance(exc, LatentError):
        display.error(message)
        raise typer.Exit(EXIT_BAD_INPUT)
    display.error(f"{type(exc).__name__}: {message} (rerun with --debug for details)")
    raise typer.Exit(1)


def command(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`app.command`, framed once for every command: the quiet environment (`--debug` turns it off), and any error
    as one `error:` line with exit code 2 for bad input (LatentError), 1 otherwise (`--debug`: the traceback).
    Ctrl+C (exit 130) and usage errors are `_OneLineUsageErrors`' job."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def framed(*args: Any, **kwargs: Any) -> Any:
            debug = bool(kwargs.get("debug", False))
            _quiet_environment(debug)
            try:
                return fn(*args, **kwargs)
            except (typer.Exit, typer.Abort):
                raise
            except Exception as exc:
                _fail(exc, debug)

        return app.command(name)(framed)

    return decorate


def _with_progress(debug: bool, run: Callable[[], Any]) -> Any:
    """Run a flow with the library's progress events shown as bars on stderr; on failure the bars go, so that
    stderr ends with the error line alone."""
    from latent.progress import set_reporter

    _quiet_mlflow_prints(debug)
    with display.progress_bars() as progress:
        set_reporter(display.RichReporter(progress))
        try:
            return run()
        except BaseException:
            display.drop_bars(progress)
            raise
        finally:
            set_reporter(None)


def _torchrun_follower() -> bool:
    """This process is a rank other than 0 of a torchrun job (torchrun starts the same command on every rank)."""
    return "WORLD_SIZE" in os.environ and os.environ.get("RANK", "0") != "0"


def _execute(stages: list[str], config: Path | None, sets: list[str] | None, debug: bool, **kwargs: Any) -> None:
    """The pipeline flow for these stages, after what the workspace alone can tell is missing (in seconds, before
    Prefect's server starts), with progress bars; then the summary."""
    from latent.lineage import check_stage_inputs

    cfg = _load(config, sets)
    if _torchrun_follower():
        # rank 0 alone runs the flow: every other stage, the Prefect flow run and the MLflow parent and stage runs;
        # the other ranks join its training (if the command trains) and print nothing
        if "train" in stages:
            from latent.train import follow

            follow(cfg.train)
        return
    check_stage_inputs(cfg, stages, bool(kwargs.get("force")))
    use_prefect_server(cfg.orchestration.prefect_api_url)
    from latent.flows.pipeline import pipeline_flow

    result = _with_progress(debug, lambda: pipeline_flow(cfg.model_dump(mode="json"), stages, **kwargs))
    display.pipeline_summary(result)


@command()
def run(config: ConfigOpt = None, set_: SetOpt = None, debug: DebugOpt = False, force: ForceOpt = False) -> None:
    """Run the whole pipeline: ingest, preprocess, train, encode, report."""
    _execute(["ingest", "preprocess", "train", "encode", "report"], config, set_, debug, force=force)


@command()
def ingest(config: ConfigOpt = None, set_: SetOpt = None, debug: DebugOpt = False, force: ForceOpt = False) -> None:
    """Read the configured source into a raw Parquet table."""
    _execute(["ingest"], config, set_, debug, force=force)


@command()
def preprocess(config: ConfigOpt = None, set_: SetOpt = None, debug: DebugOpt = False, force: ForceOpt = False) -> None:
    """Build the sharded, split dataset table with Dask (needs `latent ingest`)."""
    _execute(["preprocess"], config, set_, debug, force=force)


@command()
def train(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
    force: ForceOpt = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the interrupted training of this config; fail if there is none.")
    ] = False,
) -> None:
    """Train the configured model on the dataset table and log it to MLflow.

    An interrupted training of the same config continues from its last checkpoint (always; --resume insists on it).
    """
    _execute(["train"], config, set_, debug, force=force, resume="require" if resume else "auto")


@command()
def encode(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
    force: ForceOpt = False,
    model_uri: Annotated[
        str | None, typer.Option(help="MLflow model URI; default: the newest model trained on this dataset.")
    ] = None,
) -> None:
    """Encode every row of the dataset table into a latent table."""
    _execute(["encode"], config, set_, debug, model_uri=model_uri, force=force)


@command()
def report(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
    force: ForceOpt = False,
    table: Annotated[
        str | None,
        typer.Option("--table", "-t", help="Latent table directory; default: the newest table of this dataset."),
    ] = None,
) -> None:
    """PCA and t-SNE of the latent table, generations, and the HTML report."""
    _execute(["report"], config, set_, debug, table_path=table, force=force)


@command()
def transfer(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
    force: ForceOpt = False,
    source_model: Annotated[
        str | None, typer.Option(help="MLflow model URI or name@alias; default: the registered champion.")
    ] = None,
) -> None:
    """Frozen vs fine-tuned vs from-scratch latent spaces on a target domain (default: the shifted dataset)."""
    cfg = _load(config, set_)
    if source_model:
        cfg = cfg.model_copy(update={"transfer": cfg.transfer.model_copy(update={"source_model": source_model})})
    use_prefect_server(cfg.orchestration.prefect_api_url)
    from latent.flows.transfer import transfer_flow

    result = _with_progress(debug, lambda: transfer_flow(cfg.model_dump(mode="json"), force=force))
    display.transfer_summary(result)


def _workspace(config: Path | None, sets: list[str] | None):
    """The workspace of the analyst commands: only the config's `workspace` key is read (no pydantic models to
    build, so `latent tables`, `query` and `neighbors` answer at once); the rest is checked by the commands
    that use it."""
    from latent.config_files import workspace_setting
    from latent.workspace import Workspace

    return Workspace.at(workspace_setting(_config_file(config), sets or []))


@command()
def query(
    sql: Annotated[str, typer.Argument(help="One read-only SQL statement (DuckDB dialect).")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the result to a .csv or .parquet file.")
    ] = None,
    limit: LimitOpt = 50,
) -> None:
    """SQL over the latent tables: a view per table, `latents` (the newest) and `catalog`. Read-only."""
    from latent.query import preview_query, run_query, write_result

    workspace = _workspace(config, set_)
    if out_file is not None:
        result = run_query(workspace, sql)
        write_result(result, out_file)
        out.print(f"{result.num_rows} rows written to {out_file}", highlight=False)
        return
    display.rows(preview_query(workspace, sql, limit), "query", limit)


@command()
def neighbors(
    row_id: Annotated[str, typer.Argument(metavar="ID", help="The id of a row in the latent table.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
    top_k: TopKOpt = 10,
    metric: Annotated[str, typer.Option("--metric", "-m", help="cosine or l2.")] = "cosine",
    table: Annotated[
        str | None, typer.Option("--table", "-t", help="Latent table directory; default: the newest.")
    ] = None,
) -> None:
    """The rows nearest to ID in latent space (z_mean), with their labels."""
    from latent.query import preview_neighbors as find_neighbors

    result = find_neighbors(_workspace(config, set_), row_id, top_k, metric, table)
    display.rows(result, f"{top_k} nearest to {row_id} ({metric})", top_k)


@command()
def tables(config: ConfigOpt = None, set_: SetOpt = None, debug: DebugOpt = False) -> None:
    """The catalog: every latent table in the workspace with its provenance, newest first."""
    from latent.query import view_names
    from latent.tables import catalog_records, list_tables, published_tables

    workspace = _workspace(config, set_)
    published = list_tables(workspace)
    views = {str(t.path): name for name, t in view_names(published).items()}
    display.catalog(catalog_records(published), views, published_tables(workspace))


TableOpt = Annotated[
    str | None,
    typer.Option(
        "--table", "-t", help="Latent table: a directory or a view name from `latent tables`; default: the newest."
    ),
]


def _analysis_context(config: Path | None, sets: list[str] | None, table: str | None):
    """The workspace, its MLflow tracking and the latent space (table + model + dataset) an analysis works on."""
    from latent.explore.space import open_latent_space, resolve_table
    from latent.tracking import setup_tracking

    cfg = _load(config, sets)
    workspace = _workspace(config, sets)
    tracking = setup_tracking(cfg.tracking, workspace)
    return workspace, tracking, open_latent_space(resolve_table(workspace, table), tracking.uri)


def _analysis_done(result: Any, out_file: Path | None = None) -> None:
    """Shows an analysis, after copying its image to --out if asked."""
    if out_file is not None and result.image_path is not None:
        from latent.workspace import atomic_write_bytes

        atomic_write_bytes(out_file, Path(result.image_path).read_bytes())
    display.analysis(result, out_file)


OutImage = Annotated[Path | None, typer.Option("--out", "-o", help="Also write the image to this PNG file.")]


@command()
def interpolate(
    from_id: Annotated[str, typer.Option("--from", help="Id of the row the path starts at.")],
    to_id: Annotated[str, typer.Option("--to", help="Id of the row the path ends at.")],
    steps: Annotated[int, typer.Option(help="Points on the path, ends included.")] = 10,
    slerp: Annotated[bool, typer.Option("--slerp", help="Spherical instead of linear interpolation.")] = False,
    table: TableOpt = None,
    out_file: OutImage = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Decode the path between two rows' latent means (linear or --slerp) as an image strip, logged to MLflow."""
    from latent.explore.commands import write_interpolation

    if steps < 2:
        raise LatentError(f"--steps: expected at least 2, got {steps}")
    workspace, tracking, space = _analysis_context(config, set_, table)
    result = write_interpolation(space, from_id, to_id, steps, slerp, workspace, tracking)
    _analysis_done(result, out_file)


@command()
def arithmetic(
    plus: Annotated[str, typer.Option("--plus", help="SQL predicate of rows with the attribute, e.g. 'label = 7'.")],
    minus: Annotated[str, typer.Option("--minus", help="SQL predicate of rows without it, e.g. 'label = 1'.")],
    apply_to: Annotated[
        str | None, typer.Option("--apply", help="SQL predicate of the rows to change; default: the --minus rows.")
    ] = None,
    rows: Annotated[int, typer.Option(help="How many rows to change (the first by id).")] = 8,
    strengths: Annotated[
        str, typer.Option(help="Comma-separated multiples of the attribute vector.")
    ] = "0,0.5,1,1.5,2",
    table: TableOpt = None,
    out_file: OutImage = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Latent arithmetic: add (mean z of --plus rows − mean z of --minus rows) to chosen rows and decode the grid."""
    from latent.explore.commands import write_arithmetic

    try:
        values = [float(s) for s in strengths.split(",") if s.strip()]
    except ValueError:
        raise LatentError(f"--strengths: expected comma-separated numbers, got {strengths!r}") from None
    if not values or rows <= 0:
        raise LatentError("--strengths and --rows: expected at least one strength and a positive row count")
    workspace, tracking, space = _analysis_context(config, set_, table)
    result = write_arithmetic(space, workspace, plus, minus, apply_to, rows, values, tracking)
    _analysis_done(result, out_file)


@command()
def traverse(
    anchor: Annotated[
        list[str] | None, typer.Option("--anchor", help="Id of a row to traverse around (repeatable).")
    ] = None,
    anchors: Annotated[int, typer.Option(help="Without --anchor: how many seeded test rows.")] = 3,
    dims: Annotated[int, typer.Option(help="How many dimensions, the most informative (by KL) first.")] = 10,
    steps: Annotated[int, typer.Option(help="Points from −3σ to +3σ.")] = 9,
    table: TableOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Latent traversals: each dimension swept from −3σ to +3σ around a few anchors, ordered by KL."""
    from latent.explore.commands import write_traversals

    if dims <= 0 or anchors <= 0 or steps < 2:
        raise LatentError("--dims, --anchors and --steps: expected positive integers (--steps at least 2)")
    workspace, tracking, space = _analysis_context(config, set_, table)
    result = write_traversals(space, anchor, anchors, dims, steps, workspace, tracking)
    _analysis_done(result)


@command()
def disentangle(
    table: TableOpt = None,
    budget: Annotated[
        str, typer.Option(help="Rows for DCI (votes for FactorVAE/β-VAE: half), or 'full' for disentanglement_lib's.")
    ] = "1000",
    interventional: Annotated[
        bool, typer.Option(help="Also the FactorVAE and β-VAE scores (shapes tables: renders fresh samples).")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed of the row split, the trees and the sampling.")] = 0,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Disentanglement metrics (MIG, DCI, SAP, modularity, explicitness, FactorVAE, β-VAE) of a table with factors."""
    from latent.explore.commands import write_disentanglement

    if budget != "full" and not (budget.isdigit() and int(budget) >= 8):
        raise LatentError(f"--budget: expected an integer >= 8 or 'full', got {budget!r}")
    workspace, tracking, space = _analysis_context(config, set_, table)
    result = write_disentanglement(
        space, workspace, tracking, budget if budget == "full" else int(budget), interventional, seed
    )
    display.disentanglement(result, space.table.path.name)


@command()
def compare(
    table_a: Annotated[str, typer.Argument(metavar="TABLE_A", help="Latent table directory or view name.")],
    table_b: Annotated[str, typer.Argument(metavar="TABLE_B", help="Latent table directory or view name.")],
    split: Annotated[str | None, typer.Option(help="Compare one split only (train, val or test).")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Linear CKA between two latent tables over their shared ids (1: the same space up to rotation and scale)."""
    from latent.explore.compare import compare_tables
    from latent.explore.space import resolve_table

    workspace = _workspace(config, set_)
    a, b = resolve_table(workspace, table_a), resolve_table(workspace, table_b)
    display.cka(compare_tables(a.path, b.path, split))


@command()
def probe(
    table: TableOpt = None,
    budgets: Annotated[
        str, typer.Option(help="Comma-separated label budgets; 'all' for every label.")
    ] = "10,100,1000,all",
    raw: Annotated[bool, typer.Option(help="Also probe the raw inputs, as the reference.")] = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Logistic-regression and kNN probe accuracy on the latents (and raw inputs) with 10, 100, 1000, all labels."""
    from latent.explore.probes import probe_table
    from latent.explore.space import resolve_table

    try:
        values = [None if b.strip() == "all" else int(b) for b in budgets.split(",") if b.strip()]
    except ValueError:
        raise LatentError(f"--budgets: expected comma-separated integers or 'all', got {budgets!r}") from None
    info = resolve_table(_workspace(config, set_), table)
    display.probe_scores(probe_table(info.path, values, raw), values, info.path.name)


@command()
def serve(
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            help="The deployment spec: a prefect.yaml (its `deployments:` section); default: ./prefect.yaml, the "
            "file `prefect deploy` reads.",
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Serve the deployments of prefect.yaml on their schedules from this process (until Ctrl+C or SIGTERM)."""
    os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "INFO"  # a long-running server should say what it runs
    spec = spec_file(spec)
    try:
        from latent.deployment_spec import load_deployment_spec

        deployments = load_deployment_spec(spec).deployments  # every config checked now, read again at each run
        use_prefect_server(spec_prefect_server(spec))
        from latent.flows.deployments import serve as serve_deployments

        display.deployments(deployments)
        serve_deployments(spec)  # Prefect's runner stops its flow runs on SIGTERM and returns
    finally:
        stop_children()


@command()
def ui(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
    host: Annotated[
        str, typer.Option(help="Interface to bind; keep 127.0.0.1 unless you mean to share it.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
) -> None:
    """Start the MLflow UI on the workspace's tracking store."""
    from latent.tracking import mlflow_ui
    from latent.workspace import Workspace

    cfg = _load(config, set_)
    server = mlflow_ui(cfg.tracking, Workspace.at(cfg.workspace), host, port)
    out.print(f"MLflow UI on {server.link}  (store {server.store}); Ctrl+C to stop", highlight=False)
    raise typer.Exit(run_server(server.command))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
