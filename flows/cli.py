"""The `latent` command line: each stage alone, the whole pipeline, and the MLflow UI.

Imports are lazy on purpose: `latent tables`, `query` and `neighbors` load the config, pyarrow and DuckDB and
nothing else (no torch, MLflow, Prefect or Dask), so they answer in a fraction of a second
(benchmarks/cli.py measures it).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from latent.flows.servers import schedules_file, schedules_prefect_server, use_prefect_server
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from latent.errors import DataError, LatentError

if TYPE_CHECKING:
    from rich.progress import Progress

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
            err.print(
                f"[bold red]error:[/] {escape(message)} (see `{escape(ctx.command_path)} --help`)",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(getattr(exc, "exit_code", EXIT_BAD_INPUT))
        if code == EXIT_INTERRUPTED:  # typer turns KeyboardInterrupt into exit code 130
            _interrupted()
        sys.exit(code if isinstance(code, int) else 0)


def _interrupted() -> None:
    """Ctrl+C: one line, the processes this one started are stopped, exit 130. Without waiting for the
    interpreter's exit handlers: a terminal's Ctrl+C also stopped Prefect's temporary server, and Prefect's
    handlers would wait for it, for minutes. Nothing half-written is visible (every write publishes atomically)."""
    err.print("interrupted (Ctrl+C); nothing half-written was published", highlight=False)
    _stop_children()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


app = typer.Typer(
    cls=_OneLineUsageErrors,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="latent: learned latent spaces and analyst-ready latent tables from raw datasets.",
)
out = Console()
err = Console(stderr=True)


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


class RichReporter:
    """Shows library progress events (epochs, encoded rows) as rich progress bars."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def start(self, key: str, description: str, total: int | None) -> None:
        self.tasks[key] = self.progress.add_task(description, total=total, info="")

    def advance(self, key: str, steps: int = 1, info: str = "") -> None:
        if key in self.tasks:
            self.progress.update(self.tasks[key], advance=steps, info=info)

    def finish(self, key: str) -> None:
        task = self.tasks.pop(key, None)
        if task is not None:
            self.progress.stop_task(task)


def _drop_bars(progress: Progress) -> None:
    """On failure the bars go, so that stderr ends with the error line alone (which names what failed)."""
    for task in list(progress.task_ids):
        progress.remove_task(task)


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


def _load(config: Path | None, sets: list[str] | None, check_models: bool = True) -> Config:
    from latent.config import DEFAULT_CONFIG_PATH, load_config

    path = config if config is not None else (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None)
    return load_config(path, sets or [], check_models=check_models)


def _fail(exc: BaseException, debug: bool) -> None:
    if debug:
        raise exc
    message = escape(" ".join(str(exc).split()))  # one line, and brackets in paths or values are not markup
    if isinstance(exc, LatentError):
        err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    err.print(
        f"[bold red]error:[/] {type(exc).__name__}: {message} (rerun with --debug for details)",
        highlight=False,
        soft_wrap=True,
    )
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
    with _progress() as progress:
        set_reporter(RichReporter(progress))
        try:
            return run()
        except BaseException:
            _drop_bars(progress)
            raise
        finally:
            set_reporter(None)


def _summary(result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="latent: stages")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("output", overflow="fold")
    for stage, seconds in result["durations"].items():
        info = result["stages"][stage]
        shown = next(
            (info[k] for k in ("report_dir", "table_path", "model_uri", "dataset_path", "raw_path") if k in info), ""
        )
        if info.get("reused"):
            shown = f"{shown} (reused)"
        table.add_row(stage, f"{seconds:.1f}", str(shown))
    table.add_row("total", f"{result['total_seconds']:.1f}", f"MLflow run {result['pipeline_run_id']}", style="bold")
    out.print(table)
    images = result["stages"].get("preprocess", {}).get("images")
    if images:
        out.print(f"images: {images}", soft_wrap=True, highlight=False)
    skipped = result["stages"].get("preprocess", {}).get("skipped")
    if skipped:
        from latent.data.dataset import quarantine_path

        quarantine = quarantine_path(result["stages"]["preprocess"]["dataset_path"])
        out.print(f"skipped {skipped} unreadable file(s): {quarantine}", soft_wrap=True, highlight=False)
    if "report" in result["stages"]:
        out.print(f"report: {result['stages']['report']['html_path']}", soft_wrap=True, highlight=False)
    out.print(f"MLflow UI: latent ui  (store {result['tracking_uri']})", soft_wrap=True, highlight=False)


def _progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=err,
        transient=False,
    )


def _check_inputs(cfg: Config, stages: list[str], force: bool) -> None:
    """What a lone stage needs and the workspace alone can tell is missing, said before Prefect's server starts
    (seconds): preprocess needs the ingest plan, train/encode/report need the dataset table. (Models and tables
    are looked up in MLflow, inside the flow.)"""
    if "ingest" in stages:
        return
    from latent import lineage
    from latent.workspace import Workspace

    workspace = Workspace.at(cfg.workspace)
    if "preprocess" in stages:
        plan, _ = lineage.raw_table_for(cfg, workspace)
        if not Path(plan).is_file():
            try:
                if not force:
                    lineage.dataset_for(cfg, workspace)  # already preprocessed: the stage reuses it
                    return
            except DataError:
                pass
            raise DataError(
                f"{plan}: no ingest plan for the source as it is now (new, or changed since it was ingested); "
                "run `latent ingest` first"
            )
    else:
        lineage.dataset_for(cfg, workspace)


def _torchrun_follower() -> bool:
    """This process is a rank other than 0 of a torchrun job (torchrun starts the same command on every rank)."""
    return "WORLD_SIZE" in os.environ and os.environ.get("RANK", "0") != "0"


def _execute(stages: list[str], config: Path | None, sets: list[str] | None, debug: bool, **kwargs: Any) -> None:
    cfg = _load(config, sets)
    if _torchrun_follower():
        # rank 0 alone runs the flow: every other stage, the Prefect flow run and the MLflow parent and stage runs;
        # the other ranks join its training (if the command trains) and print nothing
        if "train" in stages:
            from latent.train import follow

            follow(cfg.train)
        return
    _check_inputs(cfg, stages, bool(kwargs.get("force")))
    use_prefect_server(cfg.orchestration.prefect_api_url)
    from latent.flows.pipeline import pipeline_flow

    result = _with_progress(debug, lambda: pipeline_flow(cfg.model_dump(mode="json"), stages, **kwargs))
    _summary(result)


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
    from rich.table import Table

    table = Table(title="latent transfer: probe accuracy on the target")
    table.add_column("approach")
    budgets = list(next(iter(result["accuracy"].values())))
    for b in budgets:
        table.add_column(f"{b} labels" if b != "all" else "all labels", justify="right")
    for approach, scores in result["accuracy"].items():
        table.add_row(approach, *(f"{scores[b]:.3f}" for b in budgets))
    out.print(table)
    m = result["metrics"]
    out.print(
        f"domain shift, MMD²: before {m['mmd_before']:.4f}, after adaptation {m['mmd_after']:.4f}; "
        f"Fréchet: before {m['frechet_before']:.2f}, after {m['frechet_after']:.2f}",
        highlight=False,
    )
    out.print(
        f"report: {result['html_path']}  (MLflow run {result['transfer_run_id']})", soft_wrap=True, highlight=False
    )


def _show(result: Any, title: str, limit: int) -> None:
    """A result's first rows in the terminal (latent.query.Rows), floats rounded, vectors abbreviated."""
    from rich.table import Table
    from rich.text import Text

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.6g}"
        if isinstance(value, list | tuple):  # DuckDB gives FLOAT[k] arrays as tuples, lists as lists
            value = list(value)
            shown = ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in value[:4])
            return f"[{shown}{', …' if len(value) > 4 else ''}]"
        return "" if value is None else str(value)

    # Text, not markup: values like '[/x]' are data, and rich would read them as (broken) style tags
    table = Table(title=Text(title))
    for name in result.column_names:
        table.add_column(Text(name), overflow="fold")
    for row in result.to_pylist()[:limit]:
        table.add_row(*(Text(cell(row[name])) for name in result.column_names))
    out.print(table)
    if result.num_rows > limit:
        out.print(f"{result.num_rows} rows; showing the first {limit} (use --limit or --out for all)")


def _workspace(config: Path | None, sets: list[str] | None):
    """The workspace of the analyst commands: only the config's `workspace` key is read (no pydantic models to
    build, so `latent tables`, `query` and `neighbors` answer at once); the rest is checked by the commands
    that use it."""
    from latent.config_files import DEFAULT_CONFIG_PATH, workspace_setting
    from latent.workspace import Workspace

    path = config if config is not None else (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None)
    return Workspace.at(workspace_setting(path, sets or []))


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
    result = preview_query(workspace, sql, limit)
    _show(result, "query", limit)


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
    _show(result, f"{top_k} nearest to {row_id} ({metric})", top_k)


@command()
def tables(config: ConfigOpt = None, set_: SetOpt = None, debug: DebugOpt = False) -> None:
    """The catalog: every latent table in the workspace with its provenance, newest first."""
    from latent.query import view_names
    from latent.tables import catalog_records, list_tables

    workspace = _workspace(config, set_)
    published = list_tables(workspace)
    catalog = catalog_records(published)
    views = {str(t.path): name for name, t in view_names(published).items()}
    if not catalog:
        out.print("no latent tables yet; run `latent run`")
        return
    for i, row in enumerate(catalog):
        view = views.get(row["table_path"], "")
        newest = "  [dim](latents)[/]" if i == 0 else ""
        out.print(
            f"[bold]{view}[/]{newest}  {row['rows']} rows, k={row['latent_dim']}, created {row['created_at']}",
            soft_wrap=True,
        )
        out.print(
            f"  model    {row['model_uri']}  (training run {row['mlflow_run_id']})", highlight=False, soft_wrap=True
        )
        out.print(f"  dataset  {row['dataset_version']}  (content {row['dataset_content_hash'][:16]})", highlight=False)
        out.print(f"  path     {row['table_path']}", highlight=False, soft_wrap=True)
    out.print('all columns: latent query "SELECT * FROM catalog"', highlight=False)


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


def _analysis_done(result: Any, out_file: Path | None) -> None:
    if out_file is not None and result.image_path is not None:
        from latent.workspace import atomic_write_bytes

        atomic_write_bytes(out_file, Path(result.image_path).read_bytes())
    shown = out_file or result.image_path or result.points_path
    out.print(f"{result.kind}: {shown}", highlight=False, soft_wrap=True)
    out.print(f"  codes and decoded samples: {result.points_path}", highlight=False, soft_wrap=True)
    if result.run_id:
        out.print(
            f"  MLflow run {result.run_id} (artifacts under analysis/{result.kind})", highlight=False, soft_wrap=True
        )


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
    out.print(
        f"  attribute vector from {result.facts['rows_plus']} − {result.facts['rows_minus']} rows, "
        f"norm {result.facts['vector_norm']:.3f}",
        highlight=False,
    )


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
    _analysis_done(result, None)
    kl = result.facts["kl_per_dim"]
    order = ", ".join(f"z{d} ({kl[d]:.2f})" for d in result.facts["dims_by_kl"])
    out.print(f"  dimensions by KL: {order}", highlight=False, soft_wrap=True)


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
    from rich.table import Table

    shown = Table(title=f"disentanglement ({space.table.path.name})")
    shown.add_column("metric")
    shown.add_column("value", justify="right")
    for key, value in result.facts.items():
        shown.add_row(key, f"{value:.4f}")
    out.print(shown)
    out.print(f"  {result.directory}/analysis.json", highlight=False, soft_wrap=True)
    if result.run_id:
        out.print(f"  MLflow run {result.run_id}", highlight=False, soft_wrap=True)


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
    result = compare_tables(a.path, b.path, split)
    out.print(
        f"linear CKA {result['linear_cka']:.4f} over {result['shared_rows']} shared rows "
        f"(k={result['latent_dim_a']} vs k={result['latent_dim_b']}; {result['rows_a']} and {result['rows_b']} rows)",
        highlight=False,
    )


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
    scores = probe_table(info.path, values, raw)
    from rich.table import Table

    result = Table(title=f"probe accuracy on the test split ({info.path.name})")
    result.add_column("inputs")
    result.add_column("probe")
    keys = [str(b) if b is not None else "all" for b in values]
    for key in keys:
        result.add_column(f"{key} labels", justify="right")
    for space in ("latent", "raw"):
        for method in ("logistic", "knn"):
            row = [scores.get(f"probe_{space}_{method}_{k}") for k in keys]
            if any(v is not None for v in row):
                result.add_row(space, method, *("" if v is None else f"{v:.3f}" for v in row))
    out.print(result)


@command()
def serve(
    schedules: Annotated[
        Path | None,
        typer.Option(
            help="Deployments and their cron schedules: a file, or `schedules` for the shipped one; "
            "default: conf/schedules.yaml if present, else the shipped one."
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Serve the pipeline as Prefect deployments on the schedules in conf/schedules.yaml (until Ctrl+C or SIGTERM)."""
    os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "INFO"  # a long-running server should say what it runs
    schedules = schedules_file(schedules)
    try:
        from latent.config import load_schedules

        use_prefect_server(schedules_prefect_server(schedules))
        from latent.flows.deployments import serve as serve_deployments

        for d in load_schedules(schedules).deployments:
            out.print(f"deployment latent-{d.flow}/{d.name}: cron '{d.cron}' ({d.timezone})", highlight=False)
        serve_deployments(schedules)  # Prefect's runner stops its flow runs on SIGTERM and returns
    finally:
        _stop_children()


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
    raise typer.Exit(_run_server(server.command))


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _run_server(cmd: list[str], grace_s: float = 20.0) -> int:
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


def _stop_children(grace_s: float = 10.0) -> None:
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
