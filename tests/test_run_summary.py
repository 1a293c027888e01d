"""The Markdown summary each flow run publishes (latent.run_summary): built from dict or dataclass stage results,
with or without the growth fields, with a real link for an http MLflow server."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from latent.report import ReportResult
from latent.run_summary import artifact_key, mlflow_run_link, run_summary_markdown

pytestmark = pytest.mark.unit


def _result(stages: dict, uri: str = "sqlite:////ws/mlflow.db") -> dict:
    return {
        "pipeline_run_id": "abc123",
        "tracking_uri": uri,
        "experiment_id": "7",
        "stages": stages,
        "durations": {name: 1.25 for name in stages},
    }


ENCODE = {"table_path": "/ws/tables/t1", "rows": 1200, "rows_per_split": {"train": 1000, "test": 200}, "reused": False}
REPORT = {"html_path": "/ws/reports/r/report.html", "reused": True}


def test_a_plain_run_lists_stages_table_rows_mlflow_run_and_report():
    md = run_summary_markdown(
        _result({"ingest": {"reused": True}, "encode": ENCODE, "report": REPORT}), "digits", "vae"
    )
    assert md.startswith("# latent run: digits · vae\n")
    assert "| ingest | reused | 1.2 |" in md and "| encode | ran | 1.2 |" in md
    assert "`/ws/tables/t1`, 1,200 rows (train 1,000, test 200)" in md
    assert "**Report:** `/ws/reports/r/report.html`" in md
    assert "`abc123` (experiment 7 in `sqlite:////ws/mlflow.db`" in md
    assert "Rows added" not in md and "Drift" not in md and "Retrained" not in md


def test_growth_drift_and_retraining_appear_when_a_stage_reports_them():
    encode = {**ENCODE, "rows_added": 12, "rows_deleted": 3, "retrained": True}
    encode["drift"] = {"mmd2": 0.0123456, "recon_ratio": 1.5, "drifted": True}
    md = run_summary_markdown(_result({"encode": encode}), "digits", "vae")
    assert "**Rows added:** 12 · **rows deleted:** 3" in md
    assert "**Drift:** MMD² 0.01235 · reconstruction error ratio 1.5 · **drifted**" in md
    assert "**Retrained:** yes" in md


def test_dataclass_stage_results_read_like_dicts():
    @dataclass
    class Drift:
        mmd2: float
        recon_ratio: float
        drifted: bool

    @dataclass
    class Grown:  # an encode result with the growth fields (their final names may differ: read by name)
        table_path: str
        rows: int
        rows_per_split: dict
        reused: bool = False
        rows_added: int = 0
        drift: Drift | None = None
        retrained: bool = False

    encode = Grown("/ws/tables/t2", 50, {"train": 50}, rows_added=5, drift=Drift(0.001, 1.0, False))
    report = ReportResult(
        report_dir="/ws/r", html_path="/ws/r/report.html", coordinates_path="/ws/r/c.parquet", run_id="r", metrics={}
    )
    md = run_summary_markdown(_result({"encode": encode, "report": report}), "shapes", "conv")
    assert "`/ws/tables/t2`, 50 rows (train 50)" in md
    assert "**Rows added:** 5 · **rows deleted:** 0" in md
    assert "MMD² 0.001 · reconstruction error ratio 1 · no drift" in md
    assert "**Retrained:** no" in md and "**Report:** `/ws/r/report.html`" in md


def test_an_http_tracking_server_gets_a_ui_link_and_keys_are_slugs():
    assert mlflow_run_link("http://mlflow:5000/", "3", "r1") == "[r1](http://mlflow:5000/#/experiments/3/runs/r1)"
    md = run_summary_markdown(_result({}, "https://mlflow.example"), "d", "m")
    assert "No stage ran." in md and "(https://mlflow.example/#/experiments/7/runs/abc123)" in md
    assert artifact_key("My_Images 2") == "latent-run-my-images-2"
