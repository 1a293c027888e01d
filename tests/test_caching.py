"""Reruns: unchanged inputs reuse every stage's output; --force recomputes; changed inputs recompute downstream."""

import re

import mlflow
import pytest
from latent.flows.pipeline import pipeline_flow

from tests.helpers import small_config

pytestmark = pytest.mark.integration

STAGES = {"ingest", "preprocess", "train", "encode", "report"}


@pytest.fixture(scope="module")
def first_run(prefect_harness, tmp_path_factory):
    cfg = small_config(tmp_path_factory.mktemp("cache") / "ws")
    return cfg, pipeline_flow(cfg.model_dump(mode="json"))


def _stage_runs(result, stage):
    client = mlflow.MlflowClient(result.tracking_uri)
    return client.search_runs([result.experiment_id], f"tags.`latent.stage` = '{stage}'")


def test_first_run_computes_everything(first_run):
    _, result = first_run
    assert not any(out.reused for out in result.stages.values())


def test_rerun_with_unchanged_inputs_reuses_every_stage(first_run):
    cfg, first = first_run
    trainings_before = len(_stage_runs(first, "train"))
    again = pipeline_flow(cfg.model_dump(mode="json"))
    assert {s for s, out in again.stages.items() if out.reused} == STAGES
    assert again.train.model_uri == first.train.model_uri
    assert again.encode.table_path == first.encode.table_path
    assert again.report.html_path == first.report.html_path
    assert len(_stage_runs(again, "train")) == trainings_before  # no new training, whatever ran before
    assert again.durations["train"] < first.durations["train"]
    parent = mlflow.MlflowClient(again.tracking_uri).get_run(again.pipeline_run_id)
    assert set(parent.data.tags["latent.reused_stages"].split(",")) == STAGES


def test_changed_training_config_retrains_and_reencodes_but_reuses_the_dataset(first_run):
    cfg, first = first_run
    changed = small_config(cfg.workspace, "train.learning_rate=0.001")
    result = pipeline_flow(changed.model_dump(mode="json"))
    reused = {s for s, out in result.stages.items() if out.reused}
    assert reused == {"ingest", "preprocess"}
    assert result.train.model_uri != first.train.model_uri


def test_force_recomputes_every_stage(first_run):
    cfg, first = first_run
    forced = pipeline_flow(cfg.model_dump(mode="json"), force=True)
    assert not any(out.reused for out in forced.stages.values())
    assert forced.train.run_id != first.train.run_id
    assert forced.report.run_id != first.report.run_id


def test_runs_carry_the_run_metadata(first_run):
    cfg, result = first_run
    client = mlflow.MlflowClient(result.tracking_uri)
    for stage in ("train", "encode", "report"):
        run = client.get_run(result.stages[stage].run_id)
        tags = run.data.tags
        assert tags["latent.prefect_flow_run_id"] == result.flow_run_id, stage
        assert tags["latent.config_hash"] == cfg.config_hash(), stage
        assert tags["latent.package_version"], stage
        assert tags["latent.dataset_version"] == result.preprocess.dataset_version, stage
        assert re.fullmatch(r"[0-9a-f]{40}", tags["latent.git_commit"]), stage  # the tests run from a git checkout
