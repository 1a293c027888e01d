"""MLflow helpers: where runs go, stage runs nested under a pipeline run, and finding earlier stage outputs."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import socket
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latent.config import TrackingConfig
from latent.errors import DataError
from latent.workspace import Workspace

logger = logging.getLogger(__name__)

TAG_PREFIX = "latent."
# The MLflow UI (3.x) opens an experiment on its GenAI traces overview unless the experiment says what it is for;
# this kind opens it on the runs table.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

# mlflow.set_tracking_uri() writes MLFLOW_TRACKING_URI into os.environ, so after the first pipeline in a process
# the variable names that pipeline's store. Read the user's value once, before any of that happens.
_USER_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


def use_tracking_uri(uri: str) -> None:
    """Point MLflow's fluent API at uri without leaking it into the environment of later pipelines."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    if _USER_TRACKING_URI is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = _USER_TRACKING_URI


@dataclass(frozen=True)
class Tracking:
    """Where a stage logs: the store, the experiment, and the pipeline run it nests under (if any)."""

    uri: str
    experiment_id: str
    parent_run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    dataset_name: str | None = None  # what ran, for run names (`train · digits · vae_mlp`) and logged inputs
    model_name: str | None = None

    def nested_under(self, parent_run_id: str) -> Tracking:
        return Tracking(
            self.uri, self.experiment_id, parent_run_id, dict(self.tags), self.dataset_name, self.model_name
        )

    def naming(self, dataset_name: str, model_name: str) -> Tracking:
        return Tracking(self.uri, self.experiment_id, self.parent_run_id, dict(self.tags), dataset_name, model_name)

    def run_name(self, what: str) -> str:
        """`what · dataset · model`, as far as they are known."""
        return " · ".join(p for p in (what, self.dataset_name, self.model_name) if p)


def tracking_uri(cfg: TrackingConfig, workspace: Workspace) -> str:
    """Config first, then MLFLOW_TRACKING_URI, then the embedded SQLite store in the workspace."""
    return cfg.uri or _USER_TRACKING_URI or workspace.tracking_uri


@dataclass(frozen=True)
class MlflowUI:
    command: list[str]  # the `mlflow server` invocation
    link: str  # where a browser should open it
    store: str  # the tracking URI it serves


def mlflow_ui(cfg: TrackingConfig, workspace: Workspace, host: str, port: int) -> MlflowUI:
    """How `latent ui` runs the MLflow UI on the workspace's tracking store (artifacts in the workspace when the
    store is the embedded SQLite one)."""
    import sys

    uri = tracking_uri(cfg, workspace)
    # MLflow 3.17 opens on its GenAI pages unless the link (or the "Model training" switch) says otherwise
    link = f"http://{host}:{port}/#/experiments?workflowType=machine_learning"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    if uri.startswith("sqlite:"):
        cmd += ["--default-artifact-root", workspace.artifact_root.as_uri()]
    return MlflowUI(cmd, link, uri)


@contextlib.contextmanager
def _store_init_lock(uri: str) -> Iterator[None]:
    """Serialise the first opening of a SQLite store across processes: MLflow creates and migrates the schema on
    first use, and two runs starting together on a new workspace would both try (`table ... already exists`)."""
    path = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else None
    if path is None:
        yield
        return
    from filelock import FileLock

    lock_path = Path(path).with_name(Path(path).name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path)):
        yield


def setup_tracking(cfg: TrackingConfig, workspace: Workspace) -> Tracking:
    """Point MLflow at the store and make sure the experiment exists (artifacts in the workspace when local)."""
    import mlflow

    uri = tracking_uri(cfg, workspace)
    use_tracking_uri(uri)
    with _store_init_lock(uri):
        client = mlflow.MlflowClient(uri)  # opens the store: creates and migrates the schema of a new one
        experiment = client.get_experiment_by_name(cfg.experiment)
    if experiment is None:
        location = workspace.artifact_root.as_uri() if uri.startswith(("sqlite:", "file:")) else None
        try:
            experiment_id = client.create_experiment(cfg.experiment, artifact_location=location)
        except mlflow.exceptions.MlflowException:  # created concurrently by another run
            experiment_id = client.get_experiment_by_name(cfg.experiment).experiment_id
    else:
        experiment_id = experiment.experiment_id
    if experiment is None or EXPERIMENT_KIND_TAG not in experiment.tags:  # a kind chosen in the UI stays
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return Tracking(uri=uri, experiment_id=experiment_id)


def tag(key: str) -> str:
    return TAG_PREFIX + key


OWNER_TAG = TAG_PREFIX + "owner"


def _process_start(pid: int) -> str:
    """The process's start time (psutil: Linux, macOS, Windows), so a reused pid is not taken for its owner."""
    import psutil

    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return ""


def current_owner() -> str:
    """`host:pid:start` of this process, tagged on every run it opens so a later run can tell a run left RUNNING
    by a killed process from one still in progress."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid)}"


def owner_alive(owner: str) -> bool:
    """False only when the owner is known to be gone: a process on this host that no longer exists (or whose pid
    now belongs to another process). Runs of other hosts, or without an owner, count as alive."""
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    import psutil

    pid = int(pid_text)
    if not psutil.pid_exists(pid):
        return False
    return not start or _process_start(pid) in ("", start)


def _orphaned(run: Any) -> bool:
    return run.info.status == "RUNNING" and not owner_alive(run.data.tags.get(OWNER_TAG, ""))


def mark_orphaned_runs(tracking: Tracking) -> list[str]:
    """End as KILLED the runs left RUNNING by a process of this host that died without closing them (SIGKILL, a
    power cut, the OOM killer). An interrupted training stays resumable: resume looks for any unfinished run."""
    import mlflow

    client = mlflow.MlflowClient(tracking.uri)
    running = client.search_runs([tracking.experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
    marked = []
    for run in running:
        if _orphaned(run):
            client.set_tag(
                run.info.run_id,
                tag("error"),
                f"killed: its process {run.data.tags[OWNER_TAG]} ended without closing the run",
            )
            client.set_terminated(run.info.run_id, "KILLED")
            marked.append(run.info.run_id)
            logger.warning("marked run %s KILLED: its process %s is gone", run.info.run_id, run.data.tags[OWNER_TAG])
    return marked


class StageRun:
    """The MLflow run of one stage, or a stand-in that logs nothing when tracking is off (tracking=None)."""

    def __init__(self, run: Any | None) -> None:
        self._run = run
        self.run_id = run.info.run_id if run is not None else uuid.uuid4().hex

    @property
    def enabled(self) -> bool:
        return self._run is not None

    def log_params(self, params: dict[str, Any]) -> None:
        if self._run is not None:
            import mlflow

            mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self._run is not None:
            import mlflow

            mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def set_tags(self, tags: dict[str, Any]) -> None:
        if self._run is not None:
            import mlflow

            mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_artifacts(self, directory: str | Path, artifact_path: str) -> None:
        if self._run is not None:
            import mlflow

            mlflow.log_artifacts(str(directory), artifact_path=artifact_path)


@contextlib.contextmanager
def stage_run(
    tracking: Tracking | None,
    stage: str,
    tags: dict[str, Any] | None = None,
    run_id: str | None = None,
    run_name: str | None = None,
) -> Iterator[StageRun]:
    """An MLflow run for one stage, nested under the pipeline run when there is one.

    If the body raises, the run ends FAILED (KILLED when interrupted) with the reason as the `latent.error` tag.
    run_id reopens an earlier run (a resumed training). With tracking=None the stage runs untracked (library use
    without MLflow; benchmarks use this as the bare baseline).
    """
    if tracking is None:
        yield StageRun(None)
        return
    import mlflow

    use_tracking_uri(tracking.uri)
    all_tags = {
        **tracking.tags,
        tag("stage"): stage,
        OWNER_TAG: current_owner(),
        **{k: str(v) for k, v in (tags or {}).items()},
    }
    if run_id is not None:
        active = mlflow.start_run(run_id=run_id)
        mlflow.set_tags(all_tags)
    else:
        active = mlflow.start_run(
            experiment_id=tracking.experiment_id,
            run_name=tracking.run_name(run_name or stage),
            parent_run_id=tracking.parent_run_id,
            tags=all_tags,
        )
    with active as run:
        try:
            yield StageRun(run)
        except BaseException as exc:
            mlflow.set_tag(tag("error"), f"{type(exc).__name__}: {' '.join(str(exc).split())[:4000]}")
            interrupted = isinstance(exc, KeyboardInterrupt | SystemExit)
            mlflow.end_run("KILLED" if interrupted else "FAILED")
            raise


def start_pipeline_run(tracking: Tracking, name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
    """The parent run of one pipeline run; its id is what stage runs nest under."""
    import mlflow

    client = mlflow.MlflowClient(tracking.uri)
    run = client.create_run(
        tracking.experiment_id, run_name=name, tags={**tracking.tags, **tags, OWNER_TAG: current_owner()}
    )
    client.log_batch(
        run.info.run_id,
        params=[mlflow.entities.Param(k, str(v)[:6000]) for k, v in params.items()],
    )
    return run.info.run_id


def end_run(
    tracking: Tracking,
    run_id: str,
    status: str,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking.uri)
    for k, v in (metrics or {}).items():
        client.log_metric(run_id, k, float(v))
    for k, v in (tags or {}).items():
        client.set_tag(run_id, k, v)
    client.set_terminated(run_id, status)


def log_text_artifact(tracking: Tracking, run_id: str, text: str, artifact_file: str) -> None:
    import mlflow

    mlflow.MlflowClient(tracking.uri).log_text(run_id, text, artifact_file)


@dataclass
class ParentRun:
    """An open parent run: `tracking` nests stage runs under it; what the flow puts in `metrics` and `end_tags`
    is logged when the run ends (the metrics also when it fails)."""

    run_id: str
    tracking: Tracking
    metrics: dict[str, float] = field(default_factory=dict)
    end_tags: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def parent_run(
    base: Tracking,
    name: str,
    tags: dict[str, str],
    params: dict[str, Any],
    config_yaml: str,
    nested_tags: dict[str, str],
) -> Iterator[ParentRun]:
    """The MLflow parent run of one flow run (pipeline or transfer): created with `tags` and `params`, the
    resolved config logged as config.yaml, stage runs nested under it carrying `nested_tags` and the parent's id.
    Ends FINISHED with the flow's metrics and end tags, or FAILED with the error as one line (and re-raises)."""
    run_id = start_pipeline_run(base, name, tags, params)
    log_text_artifact(base, run_id, config_yaml, "config.yaml")
    nested = base.nested_under(run_id)
    nested.tags.update({**nested_tags, tag("pipeline_run_id"): run_id})
    run = ParentRun(run_id, nested)
    try:
        yield run
    except BaseException as exc:
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:4000]}"
        end_run(base, run_id, "FAILED", run.metrics, {tag("error"): error})
        raise
    end_run(base, run_id, "FINISHED", run.metrics, run.end_tags)


def _newest_stage_runs(
    tracking: Tracking, stage: str, status: str, tags: dict[str, str], max_results: int = 1
) -> list[Any]:
    import mlflow

    clauses = [f"tags.`{tag('stage')}` = '{stage}'", f"attributes.status {status}"]
    clauses += [f"tags.`{tag(k)}` = '{v}'" for k, v in tags.items()]
    return mlflow.MlflowClient(tracking.uri).search_runs(
        [tracking.experiment_id],
        " and ".join(clauses),
        order_by=["attributes.start_time DESC"],
        max_results=max_results,
    )


def latest_stage_run(tracking: Tracking, stage: str, **tags: str) -> Any | None:
    """The newest FINISHED run of a stage with the given latent.* tags, or None."""
    runs = _newest_stage_runs(tracking, stage, "= 'FINISHED'", tags)
    return runs[0] if runs else None


def unfinished_stage_run(tracking: Tracking, stage: str, **tags: str) -> Any | None:
    """The newest run of a stage with these latent.* tags that did not finish (failed, killed, or left running by
    a process that is gone), or None. A run still RUNNING in a live process belongs to that process: a second
    pipeline started meanwhile with the same config must not continue it too."""
    runs = _newest_stage_runs(tracking, stage, "!= 'FINISHED'", tags, max_results=50)
    return next((r for r in runs if r.info.status != "RUNNING" or _orphaned(r)), None)


def source_commit() -> str | None:
    """The git commit of the installed `latent` source, where it is a git checkout; None otherwise."""
    import subprocess

    source = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


def log_quarantine(tracking: Tracking, run_id: str, dataset_dir: Path, skipped: int) -> None:
    """Log the files preprocessing skipped (and why) to a run: the table as an artifact, the count as a metric."""
    import mlflow

    from latent.data.dataset import quarantine_path

    client = mlflow.MlflowClient(tracking.uri)
    client.log_metric(run_id, "skipped_files", skipped)
    quarantine = quarantine_path(dataset_dir)
    if quarantine.is_file():
        client.log_artifact(run_id, str(quarantine), "preprocess")
    client.set_tag(run_id, tag("warning.skipped_files"), f"{skipped} files skipped; see preprocess/{quarantine.name}")


def set_run_tags(tracking: Tracking, run_id: str, tags: dict[str, str]) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking.uri)
    for key, value in tags.items():
        client.set_tag(run_id, key, value[:5000])


def link_table_to_run(tracking: Tracking, run_id: str, table_path: str) -> None:
    """Tag the training run with the latent table made from its model, so the MLflow UI links the two."""
    import mlflow

    mlflow.MlflowClient(tracking.uri).set_tag(run_id, tag("latent_table"), table_path)


def download_model_dir(model_uri: str, tracking_uri: str, target: Path | None = None) -> Path:
    """Download a logged model (MLflow model URI) into target (default: a new temporary directory, which the
    caller removes) and return its path. On failure nothing is left behind."""
    import mlflow

    use_tracking_uri(tracking_uri)
    made = target is None
    target = Path(tempfile.mkdtemp(prefix="latent-model-")) if target is None else target
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(target)))
    except Exception as exc:
        if made:
            shutil.rmtree(target, ignore_errors=True)
        raise DataError(f"model URI {model_uri!r}: cannot be loaded ({' '.join(str(exc).split())[:300]})") from None


def promote_if_better(
    tracking: Tracking, name: str, version: str, val_loss: float, alias: str, dataset_version: str
) -> bool:
    """Tag the model version with its dataset version, then point `alias` at it if it is the better model.

    Only versions trained on the same dataset version compete: the alias moves when this version's validation
    loss beats the holder's. A version trained on another dataset version than the holder's takes the alias (the
    newest data wins: losses on different data say nothing about which model is better)."""
    import mlflow

    client = mlflow.MlflowClient(tracking.uri)
    client.set_model_version_tag(name, version, tag("dataset_version"), dataset_version)
    try:
        current = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        current = None
    if current is not None and str(current.version) != str(version) and current.run_id:
        same_data = current.tags.get(tag("dataset_version")) == dataset_version
        held = client.get_run(current.run_id).data.metrics.get("best_val_loss", math.inf)
        if same_data and not val_loss < held:
            return False
    client.set_registered_model_alias(name, alias, version)
    return True


def log_table_input(run: StageRun, table_path: str | Path, name: str | None, version: str, context: str) -> None:
    """Log a table as the run's input dataset (the MLflow UI's Dataset column): its name, its version as the
    digest, its path as the source, and its schema. Only the schema is read, never the rows."""
    if not run.enabled:
        return
    import mlflow
    import pyarrow as pa
    import pyarrow.parquet as pq
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types.schema import ColSpec, Schema

    path = Path(table_path)
    first = next(iter(sorted(path.rglob("*.parquet"))), None) if path.is_dir() else path
    try:
        schema = pq.read_schema(first) if first is not None and first.is_file() else None
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{first}: cannot be read ({exc}); rebuild it with `latent preprocess --force`") from None
    cols = []
    for f in schema or []:
        t = str(f.type)
        kind = "double" if t.startswith(("double", "float")) else "long" if t.startswith(("int", "uint")) else None
        kind = kind or ("string" if t in ("string", "large_string") else "binary")
        cols.append(ColSpec(kind, f.name))

    with warnings.catch_warnings():  # MLflow registers the local-file source twice and says so on every lookup
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted in multiple ways")
        source = resolve_dataset_source(str(path.resolve()))
    ds = MetaDataset(
        source=source,
        name=name or path.name,
        digest=version[:36],
        schema=Schema(cols) if cols else None,
    )
    mlflow.log_input(ds, context=context)
