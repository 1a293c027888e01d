"""latent.tracking.parent_run, the one way the pipeline and transfer flows open their MLflow parent run, on a real
SQLite store: config.yaml logged, stage runs nested with the given tags, FINISHED with the flow's metrics and end
tags, or FAILED with the error line and the metrics so far."""

from __future__ import annotations

import mlflow
import pytest

from latent.config import TrackingConfig
from latent.tracking import parent_run, setup_tracking, stage_run, tag
from latent.workspace import Workspace

pytestmark = pytest.mark.integration


@pytest.fixture
def base(tmp_path):
    return setup_tracking(TrackingConfig(), Workspace.at(tmp_path / "ws"))


def test_a_finished_parent_run_carries_config_nested_runs_metrics_and_end_tags(base):
    with parent_run(base, "p", {tag("kind"): "pipeline"}, {"a.b": 1}, "a:\n  b: 1\n", {tag("x"): "y"}) as run:
        assert run.tracking.parent_run_id == run.run_id
        with stage_run(run.tracking, "train", {}) as stage:
            child = stage.run_id
        run.metrics["duration_total_s"] = 1.5
        run.end_tags[tag("reused_stages")] = ""
    client = mlflow.MlflowClient(base.uri)
    parent = client.get_run(run.run_id)
    assert parent.info.status == "FINISHED" and parent.data.params == {"a.b": "1"}
    assert parent.data.metrics == {"duration_total_s": 1.5} and parent.data.tags[tag("reused_stages")] == ""
    assert [a.path for a in client.list_artifacts(run.run_id)] == ["config.yaml"]
    nested = client.get_run(child).data.tags
    assert nested["mlflow.parentRunId"] == run.run_id
    assert nested[tag("pipeline_run_id")] == run.run_id and nested[tag("x")] == "y"


def test_a_failing_flow_ends_its_parent_run_failed_with_one_error_line(base):
    with pytest.raises(ValueError, match="bad"), parent_run(base, "p", {}, {}, "", {}) as run:
        run.metrics["duration_ingest_s"] = 0.5
        raise ValueError("bad\ninput")
    parent = mlflow.MlflowClient(base.uri).get_run(run.run_id)
    assert parent.info.status == "FAILED" and parent.data.tags[tag("error")] == "ValueError: bad input"
    assert parent.data.metrics == {"duration_ingest_s": 0.5}
