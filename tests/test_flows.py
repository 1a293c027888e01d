"""The pipeline flow under Prefect's test harness, with MLflow on SQLite and a local Dask cluster."""

import mlflow
import pytest
from latent.flows.pipeline import pipeline_flow

from latent.errors import DataError
from tests.helpers import small_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def flow_result(flow_run):
    return flow_run  # the session's small pipeline flow run (tests/conftest.py), shared with tests/test_transfer.py


def test_flow_run_completes_in_prefect(flow_result):
    from prefect.client.orchestration import get_client

    cfg, result = flow_result
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(result.flow_run_id)
    assert flow_run.state.is_completed()
    assert set(result.durations) == {"ingest", "preprocess", "train", "encode", "report"}
    assert set(result.work_seconds) == set(result.durations)  # each task times its library call
    assert all(0 < result.work_seconds[s] <= result.durations[s] for s in result.durations)
    assert 1 <= result.train.epochs <= cfg.train.epochs and result.encode.rows == result.preprocess.n_rows


def test_one_parent_run_tagged_with_the_flow_run_and_a_nested_run_per_stage(flow_result):
    cfg, result = flow_result
    client = mlflow.MlflowClient(result.tracking_uri)
    parent = client.get_run(result.pipeline_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["latent.prefect_flow_run_id"] == result.flow_run_id
    assert parent.data.tags["latent.config_hash"] == cfg.config_hash()
    assert parent.data.params["train.epochs"] == str(cfg.train.epochs)
    assert "duration_train_s" in parent.data.metrics
    children = client.search_runs([result.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert {c.data.tags["latent.stage"] for c in children} == {"train", "encode", "report"}
    assert all(c.data.tags["latent.prefect_flow_run_id"] == result.flow_run_id for c in children)
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"config.yaml"}


def test_a_stage_run_alone_finds_its_inputs(flow_result):
    cfg, first = flow_result
    encoded = pipeline_flow(cfg.model_dump(mode="json"), ["encode"])
    assert encoded.encode.table_path == first.encode.table_path
    assert encoded.encode.reused
    reported = pipeline_flow(cfg.model_dump(mode="json"), ["report"])
    assert reported.report.html_path.endswith("report.html")


def test_a_stage_without_its_inputs_fails_with_the_step_to_take(prefect_harness, tmp_path):
    cfg = small_config(tmp_path / "empty")
    with pytest.raises(DataError, match="run `latent preprocess` first"):
        pipeline_flow(cfg.model_dump(mode="json"), ["train"])
    client = mlflow.MlflowClient(cfg.tracking.uri or f"sqlite:///{tmp_path / 'empty' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("latent").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "run `latent preprocess` first" in runs[0].data.tags["latent.error"]


def test_the_run_publishes_its_summary_as_a_markdown_artifact(flow_result):
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from latent.run_summary import artifact_key

    cfg, result = flow_result
    only_this_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(result.flow_run_id)]))
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=only_this_run)
    (summary,) = [a for a in artifacts if a.key == artifact_key(cfg.dataset.name)]
    assert summary.type == "markdown"
    assert f"`{result.pipeline_run_id}`" in summary.data  # the MLflow parent run
    assert f"`{result.encode.table_path}`" in summary.data
    assert f"`{result.report.html_path}`" in summary.data
    assert "| train | ran |" in summary.data


def test_encode_by_registered_name_reuses_the_table_of_the_same_model(flow_result):
    cfg, result = flow_result
    table = result.encode.table_path
    name = cfg.tracking.registered_model
    for uri in (f"models:/{name}/1", f"models:/{name}@{cfg.tracking.champion_alias}"):
        again = pipeline_flow(cfg.model_dump(mode="json"), ["encode"], model_uri=uri)
        assert again.encode.table_path == table, uri
        assert again.encode.reused
    with pytest.raises(DataError, match="no-such-model"):
        pipeline_flow(cfg.model_dump(mode="json"), ["encode"], model_uri="models:/no-such-model/1")
