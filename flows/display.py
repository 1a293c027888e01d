"""What the `latent` commands print: the consoles, the progress bars, and one function per kind of result.

The commands in `flows/cli.py` parse, call one library or flow function, and hand its result to a function here.
Imports stay lazy (rich's tables and bars are imported when a function needs them), so the analyst commands keep
answering in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from latent.flows.pipeline import PipelineResult
    from latent.flows.transfer import TransferFlowResult
    from rich.progress import Progress

out = Console()
err = Console(stderr=True)


def say(text: str) -> None:
    """One line on stdout, unwrapped and without rich's highlighting."""
    out.print(text, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    """The one `error:` line on stderr (the message is escaped: brackets in paths or values are not markup)."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


# ---- progress ------------------------------------------------------------------------------------------------


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


def progress_bars() -> Progress:
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


def drop_bars(progress: Progress) -> None:
    """On failure the bars go, so that stderr ends with the error line alone (which names what failed)."""
    for task in list(progress.task_ids):
        progress.remove_task(task)


# ---- flows ---------------------------------------------------------------------------------------------------

_STAGE_OUTPUT = ("report_dir", "table_path", "model_uri", "dataset_path", "raw_path")  # what each stage made


def pipeline_summary(result: PipelineResult) -> None:
    """The stages with their seconds and outputs, then the images, the quarantine, the report and the MLflow UI."""
    from rich.table import Table

    table = Table(title="latent: stages")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("output", overflow="fold")
    for stage, seconds in result.durations.items():
        info = result.stages[stage]
        shown = next((getattr(info, k) for k in _STAGE_OUTPUT if hasattr(info, k)), "")
        if info.reused:
            shown = f"{shown} (reused)"
        table.add_row(stage, f"{seconds:.1f}", str(shown))
    table.add_row("total", f"{result.total_seconds:.1f}", f"MLflow run {result.pipeline_run_id}", style="bold")
    out.print(table)
    prepared = result.preprocess
    if prepared is not None and prepared.images:
        say(f"images: {prepared.images}")
    if prepared is not None and prepared.skipped:
        from latent.data.dataset import quarantine_path

        say(f"skipped {prepared.skipped} unreadable file(s): {quarantine_path(prepared.dataset_path)}")
    encoded = result.encode
    if encoded is not None and encoded.drift is not None:  # the source grew: what the run did with the new rows
        drift = encoded.drift
        verdict = "drifted" if drift["drifted"] else "no drift"
        action = "retrained and re-encoded every row" if encoded.retrained else "appended with the table's model"
        say(
            f"grown: +{encoded.rows_added} -{encoded.rows_deleted} rows; MMD² {drift['mmd2']:.4f}, reconstruction "
            f"error ratio {drift['recon_ratio']:.2f} ({verdict}); {action}"
        )
    if encoded is not None and encoded.published_path:
        say(f"table: {encoded.published_path}")
    if result.report is not None:
        say(f"report: {result.report.html_path}")
    say(f"MLflow UI: latent ui  (store {result.tracking_uri})")


def transfer_summary(result: TransferFlowResult) -> None:
    """Probe accuracy per approach and label budget, the domain shift before and after, and the report."""
    from rich.table import Table

    table = Table(title="latent transfer: probe accuracy on the target")
    table.add_column("approach")
    budgets = list(next(iter(result.accuracy.values())))
    for b in budgets:
        table.add_column(f"{b} labels" if b != "all" else "all labels", justify="right")
    for approach, scores in result.accuracy.items():
        table.add_row(approach, *(f"{scores[b]:.3f}" for b in budgets))
    out.print(table)
    m = result.metrics
    out.print(
        f"domain shift, MMD²: before {m['mmd_before']:.4f}, after adaptation {m['mmd_after']:.4f}; "
        f"Fréchet: before {m['frechet_before']:.2f}, after {m['frechet_after']:.2f}",
        highlight=False,
    )
    say(f"report: {result.html_path}  (MLflow run {result.transfer_run_id})")


def deployments(specs: list[Any]) -> None:
    """One line per deployment `latent serve` runs: its schedules and concurrency limit."""
    for d in specs:
        crons = ", ".join(f"'{s.cron}' ({s.timezone})" for s in d.schedules)
        limit = d.concurrency_limit
        out.print(
            f"deployment {d.flow_name}/{d.name}: cron {crons}, at most {limit.limit} at once "
            f"({limit.collision_strategy.lower()})",
            highlight=False,
        )


# ---- analyst commands ----------------------------------------------------------------------------------------


def rows(result: Any, title: str, limit: int) -> None:
    """A result's first rows (latent.query.Rows), floats rounded, vectors abbreviated."""
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


def catalog(records: list[dict[str, Any]], views: dict[str, str], published: dict[str, str]) -> None:
    """Every latent table, newest first: its view name, size, model, dataset, path, the snapshot it grew from and
    the published path showing it."""
    if not records:
        out.print("no latent tables yet; run `latent run`")
        return
    for i, row in enumerate(records):
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
        if row.get("parent_table"):  # a snapshot of a growing source
            out.print(
                f"  snapshot +{row['rows_added']} -{row['rows_deleted']} rows since {row['parent_table']}",
                highlight=False,
                soft_wrap=True,
            )
        if row["table_path"] in published:
            out.print(f"  published as {published[row['table_path']]}", highlight=False, soft_wrap=True)
    out.print('all columns: latent query "SELECT * FROM catalog"', highlight=False)


def analysis(result: Any, shown: Path | str | None = None) -> None:
    """An analysis' image (or `shown`), its points and its MLflow run; then its facts, by kind."""
    out.print(f"{result.kind}: {shown or result.image_path or result.points_path}", highlight=False, soft_wrap=True)
    out.print(f"  codes and decoded samples: {result.points_path}", highlight=False, soft_wrap=True)
    if result.run_id:
        out.print(
            f"  MLflow run {result.run_id} (artifacts under analysis/{result.kind})", highlight=False, soft_wrap=True
        )
    facts = result.facts
    if result.kind == "arithmetic":
        out.print(
            f"  attribute vector from {facts['rows_plus']} − {facts['rows_minus']} rows, "
            f"norm {facts['vector_norm']:.3f}",
            highlight=False,
        )
    if result.kind == "traversals":
        kl = facts["kl_per_dim"]
        order = ", ".join(f"z{d} ({kl[d]:.2f})" for d in facts["dims_by_kl"])
        out.print(f"  dimensions by KL: {order}", highlight=False, soft_wrap=True)


def disentanglement(result: Any, table_name: str) -> None:
    from rich.table import Table

    shown = Table(title=f"disentanglement ({table_name})")
    shown.add_column("metric")
    shown.add_column("value", justify="right")
    for key, value in result.facts.items():
        shown.add_row(key, f"{value:.4f}")
    out.print(shown)
    out.print(f"  {result.directory}/analysis.json", highlight=False, soft_wrap=True)
    if result.run_id:
        out.print(f"  MLflow run {result.run_id}", highlight=False, soft_wrap=True)


def cka(result: dict[str, Any]) -> None:
    out.print(
        f"linear CKA {result['linear_cka']:.4f} over {result['shared_rows']} shared rows "
        f"(k={result['latent_dim_a']} vs k={result['latent_dim_b']}; {result['rows_a']} and {result['rows_b']} rows)",
        highlight=False,
    )


def probe_scores(scores: dict[str, float], budgets: list[int | None], table_name: str) -> None:
    """Accuracy per inputs (latent, raw) and probe (logistic, kNN), one column per label budget."""
    from rich.table import Table

    result = Table(title=f"probe accuracy on the test split ({table_name})")
    result.add_column("inputs")
    result.add_column("probe")
    keys = [str(b) if b is not None else "all" for b in budgets]
    for key in keys:
        result.add_column(f"{key} labels", justify="right")
    for space in ("latent", "raw"):
        for method in ("logistic", "knn"):
            row = [scores.get(f"probe_{space}_{method}_{k}") for k in keys]
            if any(v is not None for v in row):
                result.add_row(space, method, *("" if v is None else f"{v:.3f}" for v in row))
    out.print(result)
