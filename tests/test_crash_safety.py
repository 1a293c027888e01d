"""Crash safety: `latent run` killed with SIGKILL in preprocess, in training and in encoding, then rerun.

The fast version of `benchmarks/faults.py` (one trial per stage, the same checks): real processes, a real SIGKILL
of the whole process group, real tables read back whole.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from benchmarks import faults
from latent.tracking import current_owner, owner_alive
from latent.workspace import Workspace, _temp_sibling, publish_dir, sweep_stale, sweep_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]  # a few minutes; more on a busy machine


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    lines: list[str] = []
    result = faults.run_experiment(
        tmp_path_factory.mktemp("faults"),
        n_trials=3,
        seed=0,
        epochs=6,
        engines=("dask",),
        log=lines.append,
        min_checkpoints=1,  # the training is killed after its first checkpoint, so it has something to resume
    )
    print("\n".join(lines))
    return result


def test_each_stage_was_killed_mid_work(summary):
    assert [(t.target, t.killed_in) for t in summary.trials] == [
        ("preprocess", "preprocess"),
        ("train", "train"),
        ("encode", "encode"),
    ]
    assert all(t.survivors == 0 for t in summary.trials)


def test_no_table_is_ever_seen_half_written(summary):
    for t in summary.trials:
        assert t.half_written_after_kill == [], t
        assert t.half_written_after_rerun == [], t


def test_reruns_complete_with_the_rows_of_an_uninterrupted_run(summary):
    assert all(t.rerun_ok and t.rows_equal for t in summary.trials)


def test_a_killed_training_resumes_from_its_last_checkpoint(summary):
    (train,) = [t for t in summary.trials if t.target == "train"]
    assert train.checkpoint is not None and train.checkpoint >= 1, train
    assert train.resumed is True, train


def test_runs_left_running_by_the_killed_process_are_marked(summary):
    assert all(t.left_running >= 1 for t in summary.trials)  # at least the pipeline's parent run
    assert all(t.marked == t.left_running for t in summary.trials)


def test_temporaries_of_the_killed_process_are_swept_by_the_rerun(summary):
    assert sum(t.temporaries_after_kill for t in summary.trials) >= 1
    assert all(t.temporaries_after_rerun == 0 for t in summary.trials)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_owner_of_a_run_is_alive_only_while_its_process_runs():
    assert owner_alive(current_owner())
    host = current_owner().split(":")[0]
    assert not owner_alive(f"{host}:{_dead_pid()}:1")
    assert not owner_alive(f"{host}:{os.getpid()}:1")  # the pid now belongs to another process (other start time)
    assert owner_alive(f"another-host:{_dead_pid()}:1")  # other hosts cannot be checked: never marked
    assert owner_alive("")


def test_staging_of_a_dead_writer_is_swept_and_a_live_ones_kept(tmp_path):
    final = tmp_path / "table"
    live = _temp_sibling(final)
    live.mkdir()
    dead = tmp_path / live.name.replace(f"-{os.getpid()}@", f"-{_dead_pid()}@")
    dead.mkdir()
    (dead / "part-00000.parquet").write_bytes(b"half")
    with publish_dir(final) as staging:
        (staging / "a").write_text("a")
    assert not dead.exists() and live.is_dir() and (final / "a").is_file()
    assert sweep_stale(final) == []


def test_workspace_sweep_finds_a_dead_writers_temporaries_anywhere_and_keeps_the_rest(tmp_path):
    """A report killed mid-write and never republished: its staging is found without publishing that report."""
    ws = Workspace.at(tmp_path / "ws")
    dead_pid = _dead_pid()
    report = _temp_sibling(ws.report_dir("abc123"))
    dead_report = report.parent / report.name.replace(f"-{os.getpid()}@", f"-{dead_pid}@")
    dead_report.mkdir(parents=True)
    (dead_report / "report.html").write_text("<html>half")
    table = ws.latent_dir("d1", "m1")
    table.mkdir(parents=True)
    partial = _temp_sibling(table / "part-00000.parquet")
    dead_file = partial.parent / partial.name.replace(f"-{os.getpid()}@", f"-{dead_pid}@")
    dead_file.write_bytes(b"PAR1")
    live = _temp_sibling(ws.dataset_dir("d1"))
    live.mkdir(parents=True)
    kept = table / "part-00001.parquet"
    kept.write_bytes(b"PAR1")
    mlflow_owned = ws.artifact_root / "1" / dead_report.name  # the artifact store is MLflow's, not ours
    mlflow_owned.mkdir(parents=True)
    assert sorted(sweep_workspace(ws)) == sorted([dead_report, dead_file])
    assert not dead_report.exists() and not dead_file.exists()
    assert live.is_dir() and kept.is_file() and mlflow_owned.is_dir()
    assert sweep_workspace(ws) == []


def test_sigkill_mid_publish_leaves_the_previous_version(tmp_path):
    """A writer killed while staging a replacement: readers keep the old version, the next publish sweeps up."""
    final = tmp_path / "table"
    with publish_dir(final) as staging:
        (staging / "v").write_text("1")
    code = (
        "import sys, time; from pathlib import Path; from latent.workspace import publish_dir\n"
        "with publish_dir(Path(sys.argv[1]), replace=True) as s:\n"
        "    (s / 'v').write_text('2'); print('staged', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [faults.sys.executable, "-c", code, str(final)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout.readline().strip() == "staged"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.1)
    assert (final / "v").read_text() == "1"
    assert len(list(tmp_path.glob(".tmp-table-*"))) == 1
    with publish_dir(final, replace=True) as staging:
        (staging / "v").write_text("3")
    assert (final / "v").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table"]


def test_orphaned_runs_are_marked_and_only_a_dead_owners_training_is_resumed(tmp_path):
    import mlflow

    from latent.config import TrackingConfig
    from latent.tracking import OWNER_TAG, mark_orphaned_runs, setup_tracking, unfinished_stage_run

    tracking = setup_tracking(TrackingConfig(), Workspace.at(tmp_path / "ws"))
    client = mlflow.MlflowClient(tracking.uri)
    host = current_owner().split(":")[0]
    owners = {"live": current_owner(), "dead": f"{host}:{_dead_pid()}:1", "unknown": None}
    ids = {}
    for name, owner in owners.items():
        tags = {"latent.stage": "train", "latent.train_key": name}
        if owner is not None:
            tags[OWNER_TAG] = owner
        ids[name] = client.create_run(tracking.experiment_id, tags=tags).info.run_id

    assert unfinished_stage_run(tracking, "train", train_key="live") is None  # another live process is on it
    assert unfinished_stage_run(tracking, "train", train_key="dead").info.run_id == ids["dead"]
    assert mark_orphaned_runs(tracking) == [ids["dead"]]
    dead = client.get_run(ids["dead"])
    assert dead.info.status == "KILLED" and "ended without closing the run" in dead.data.tags["latent.error"]
    assert client.get_run(ids["live"]).info.status == "RUNNING"
    assert client.get_run(ids["unknown"]).info.status == "RUNNING"  # no owner recorded: never guessed at
    assert unfinished_stage_run(tracking, "train", train_key="dead").info.run_id == ids["dead"]  # still resumable
