"""Finding a stage's inputs when it runs alone: from the config (dataset identity) and MLflow tags (models, tables)."""

from __future__ import annotations

from pathlib import Path

from latent.config import Config
from latent.data.dataset import is_dataset_table
from latent.data.ingest import plan_path, source_fingerprint
from latent.data.preprocess import dataset_version
from latent.errors import DataError
from latent.tables import read_table_info
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
    """(model URI, model version, training run id) of the newest finished training on this dataset."""
    version = Path(dataset_path).name
    run = latest_stage_run(tracking, "train", dataset_version=version)
    if run is None or tag("model_uri") not in run.data.tags:
        raise DataError(
            f"no trained model for dataset {version} in experiment {tracking.experiment_id}; run `latent train` first or pass --model-uri"
        )
    tags = run.data.tags
    return tags[tag("model_uri")], tags.get(tag("model_version"), run.info.run_id), run.info.run_id


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
