"""Finding a stage's inputs when it runs alone: from the config (dataset identity) and MLflow tags (models, tables)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from latent.config import Config, TrainConfig, stable_hash
from latent.data.dataset import is_dataset_table, read_increment, read_manifest
from latent.data.ingest import plan_path, source_fingerprint
from latent.data.preprocess import dataset_version
from latent.errors import DataError
from latent.tables import is_latent_table, read_series, read_table_info
from latent.tracking import Tracking, latest_stage_run, tag
from latent.workspace import Workspace


def raw_table_for(cfg: Config, workspace: Workspace) -> tuple[str, str]:
    """(ingest plan path, source fingerprint) that `latent ingest` writes for this config."""
    fingerprint = source_fingerprint(cfg.dataset)
    return str(plan_path(workspace, fingerprint, cfg.preprocess.shard_rows)), fingerprint


def dataset_for(cfg: Config, workspace: Workspace) -> str:
    """The dataset table `latent preprocess` writes for this config (its version is known before it exists)."""
    _, fingerprint = raw_table_for(cfg, workspace)
    path = workspace.dataset_dir(dataset_version(fingerprint, cfg.preprocess))
    if not is_dataset_table(path):
        raise DataError(f"{path}: no dataset table for this config yet; run `latent preprocess` first")
    return str(path)


def model_for(tracking: Tracking, dataset_path: str) -> tuple[str, str, str]:
    """(model URI, model version, training run id) of the newest finished training on this dataset; for a snapshot
    of a growing source trained on no model of its own, the newest one trained on the nearest snapshot it grew from
    (the model its appended rows were encoded with)."""
    version = Path(dataset_path).name
    for ancestor in _snapshot_chain(Path(dataset_path)):
        run = latest_stage_run(tracking, "train", dataset_version=ancestor)
        if run is not None and tag("model_uri") in run.data.tags:
            tags = run.data.tags
            return tags[tag("model_uri")], tags.get(tag("model_version"), run.info.run_id), run.info.run_id
    raise DataError(
        f"no trained model for dataset {version} in experiment {tracking.experiment_id}; run `latent train` first or pass --model-uri"
    )


def _snapshot_chain(dataset_path: Path, limit: int = 10_000) -> list[str]:
    """This dataset version, then the versions it grew from, nearest first (as far as they are still on disk)."""
    chain = [dataset_path.name]
    current = dataset_path
    while len(chain) < limit and is_dataset_table(current):
        try:
            parent = read_manifest(current).parent
        except DataError:
            break
        if not parent or parent in chain:
            break
        chain.append(parent)
        current = current.parent / parent
    return chain


def table_for(tracking: Tracking, dataset_path: str) -> tuple[str, str]:
    """(latent table path, model URI) of the newest finished encoding of this dataset."""
    version = Path(dataset_path).name
    run = latest_stage_run(tracking, "encode", dataset_version=version)
    if run is None or tag("table_path") not in run.data.tags:
        raise DataError(f"no latent table for dataset {version}; run `latent encode` first or pass --table")
    path = run.data.tags[tag("table_path")]
    return path, read_table_info(path).info["model"]["uri"]


def model_version_of(tracking: Tracking | None, model_uri: str) -> str:
    """The version name a latent table is filed under for a model URI: for `models:/<name>/<version>` and
    `models:/<name>@<alias>` the logged model's id (`m-...`), so one model gets one table however it is named;
    otherwise the URI's last segment (`models:/m-...`, `runs:/<run>/<path>`, a local model directory)."""
    prefix = "models:/"
    rest = model_uri[len(prefix) :].strip("/") if model_uri.startswith(prefix) else ""
    if tracking is not None and rest and not rest.startswith("m-"):
        import mlflow

        client = mlflow.MlflowClient(tracking.uri)
        name, _, version = rest.partition("/")
        try:
            if "@" in name:
                name, alias = name.split("@", 1)
                found = client.get_model_version_by_alias(name, alias)
            else:
                found = client.get_model_version(name, version)
        except mlflow.exceptions.MlflowException as exc:
            raise DataError(f"model {model_uri!r}: {' '.join(str(exc.message).split())}") from None
        source = str(found.source or "")
        model_id = getattr(found, "model_id", None) or (
            source[len(prefix) :] if source.startswith(prefix + "m-") else None
        )
        if model_id:
            return model_id
    return model_uri.rstrip("/").rsplit("/", 1)[-1]


def check_stage_inputs(cfg: Config, stages: list[str], force: bool) -> None:
    """What lone stages need and the workspace alone can tell is missing, said before an orchestrator starts
    (seconds): preprocess needs the ingest plan, train/encode/report need the dataset table. (Models and tables
    are looked up in MLflow, inside the flow.)"""
    if "ingest" in stages:
        return
    workspace = Workspace.at(cfg.workspace)
    if "preprocess" in stages:
        plan, _ = raw_table_for(cfg, workspace)
        if not Path(plan).is_file():
            try:
                if not force:
                    dataset_for(cfg, workspace)  # already preprocessed: the stage reuses it
                    return
            except DataError:
                pass
            raise DataError(
                f"{plan}: no ingest plan for the source as it is now (new, or changed since it was ingested); "
                "run `latent ingest` first"
            )
    else:
        dataset_for(cfg, workspace)


# ---- a growing source: the series of snapshots a config makes ----------------------------------------------


def series_name(cfg: Config) -> str:
    """The published path's name, `tables/<dataset name>-<model name>/`."""
    return f"{cfg.dataset.name}-{cfg.model.name}"


def series_key(cfg: Config) -> str:
    """Everything but the data that a series' tables depend on: source, preprocessing, model and training config
    (not the retrain policy). A run whose key differs from the published one trains as any changed config does."""
    return stable_hash(
        {
            "dataset": cfg.dataset.model_dump(mode="json"),
            "preprocess": cfg.preprocess.model_dump(mode="json"),
            "model": cfg.model.model_dump(mode="json"),
            "train": cfg.train.model_dump(mode="json", exclude=set(TrainConfig.POLICY_FIELDS)),
        }
    )


@dataclass(frozen=True)
class Growth:
    """Facts about a run whose data grew and whose config did not: the published table to append to, and the
    model it was made with."""

    previous_table: str
    model_uri: str
    model_version: str
    train_run_id: str | None
    rows_added: int
    rows_deleted: int
    up_to_date: bool = False  # the published table already holds this dataset snapshot: nothing to do


def growth_of(cfg: Config, workspace: Workspace, dataset_path: str) -> Growth | None:
    """Growth when the dataset table is a snapshot made from the one the series' published table holds, under
    the same config (`up_to_date` when the published table holds this snapshot already); None otherwise (a first
    run, an unchanged source built whole, or a changed config: train as usual)."""
    published = read_series(workspace, series_name(cfg))
    if not published or published.get("key") != series_key(cfg) or not is_latent_table(published["table"]):
        return None
    manifest = read_manifest(dataset_path)
    increment = read_increment(dataset_path)
    if manifest.dataset_version == published["dataset_version"] and manifest.parent is not None:
        # a rerun after an appended snapshot: its table is published (training on it would be a retrain)
        return Growth(
            published["table"],
            published["model_uri"],
            published["model_version"],
            published.get("train_run_id"),
            0,
            0,
            up_to_date=True,
        )
    if manifest.parent is None or increment is None or manifest.parent != published["dataset_version"]:
        return None
    return Growth(
        previous_table=published["table"],
        model_uri=published["model_uri"],
        model_version=published["model_version"],
        train_run_id=published.get("train_run_id"),
        rows_added=int(increment["rows_added"]),
        rows_deleted=int(increment["rows_deleted"]),
    )


def publish_series(cfg: Config, workspace: Workspace, table_path: str) -> str:
    """Make the table the series' published path (`tables/<name>/`) with the facts the next run compares with."""
    from latent.tables import publish_series as publish

    info = read_table_info(table_path).info
    series = {
        "key": series_key(cfg),
        "dataset_version": info["dataset"]["version"],
        "model_uri": info["model"]["uri"],
        "model_version": info["model"]["version"],
        "train_run_id": info.get("mlflow_run_id"),
    }
    return str(publish(workspace, series_name(cfg), table_path, series))
