"""Data-parallel training (DDP over gloo, two CPU processes): it trains like one process with the same global
batch, a killed rank fails the run and the next run resumes, and the pipeline records the world size."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import psutil
import pytest
import torch

from latent.errors import TrainingError
from latent.tracking import setup_tracking
from latent.train import train
from latent.workspace import Workspace
from tests.helpers import LATENT, ROOT, SMALL, clean_env, small_config

pytestmark = pytest.mark.e2e

TOLERANCE = 0.05  # relative difference of the best validation loss, 2 processes vs 1


def _train(dataset, workspace, *extra):
    cfg = small_config(workspace, "tracking.registered_model=null", *extra)
    ws = Workspace.at(cfg.workspace)
    tracking = setup_tracking(cfg.tracking, ws)
    return train(dataset, cfg.model, cfg.train, ws, tracking), tracking


@pytest.mark.parametrize("data", ["memory", "stream"])
def test_two_processes_train_like_one_with_the_same_global_batch(library_run, tmp_path, data):
    dataset = library_run.preprocess.dataset_path
    one, _ = _train(dataset, tmp_path / "one", "train.epochs=4", f"train.data={data}")
    two, tracking = _train(dataset, tmp_path / "two", "train.epochs=4", f"train.data={data}", "train.devices=2")
    difference = abs(two.best_val_loss - one.best_val_loss) / one.best_val_loss
    print(
        f"{data}: best val loss 1 process {one.best_val_loss:.3f}, 2 processes {two.best_val_loss:.3f}, "
        f"relative difference {difference:.3f} (tolerance {TOLERANCE})"
    )
    assert difference < TOLERANCE
    run = mlflow.MlflowClient(tracking.uri).get_run(two.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["world_size"] == "2" and run.data.tags["latent.world_size"] == "2"
    assert len(mlflow.MlflowClient(tracking.uri).get_metric_history(two.run_id, "val_loss")) == 4


def _kill_a_rank_after_first_checkpoint(models: Path, killed: list) -> None:
    """SIGKILL one training process (a spawned child of this test) once a checkpoint exists."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(models.glob("*/last.pt")):
            for child in psutil.Process(os.getpid()).children(recursive=True):
                try:
                    if "spawn_main" in " ".join(child.cmdline()):
                        os.kill(child.pid, signal.SIGKILL)
                        killed.append(child.pid)
                        return
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
        time.sleep(0.02)


def test_a_killed_rank_fails_the_run_and_the_next_run_resumes(library_run, tmp_path):
    dataset = library_run.preprocess.dataset_path
    extra = ("train.epochs=40", "train.devices=2", "train.data=memory")
    killed: list[int] = []
    killer = threading.Thread(
        target=_kill_a_rank_after_first_checkpoint, args=(tmp_path / "ws" / "models", killed), daemon=True
    )
    killer.start()
    with pytest.raises(TrainingError, match=r"rank [01] of 2 failed: killed by SIGKILL"):
        _train(dataset, tmp_path / "ws", *extra)
    killer.join()
    assert killed
    cfg = small_config(tmp_path / "ws")
    client = mlflow.MlflowClient(setup_tracking(cfg.tracking, Workspace.at(cfg.workspace)).uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FAILED"
    assert "of 2 failed: killed by SIGKILL" in run.data.tags["latent.error"]
    last = torch.load(Path(tmp_path / "ws" / "models" / run.info.run_id / "last.pt"), weights_only=True)
    resumed, _ = _train(dataset, tmp_path / "ws", *extra)
    assert resumed.run_id == run.info.run_id and resumed.resumed_from_epoch >= last["epoch"] >= 1
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_loss")) == list(range(1, 41))


def _pipeline_and_train_runs(workspace: Path) -> tuple[list, list]:
    client = mlflow.MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    parents = client.search_runs(experiments, "tags.`latent.kind` = 'pipeline'")
    return parents, client.search_runs(experiments, "tags.`latent.stage` = 'train'")


def test_latent_run_with_two_devices_records_the_world_size_in_one_pipeline_run(
    tmp_path, prefect_harness, monkeypatch, latent_app
):
    """`latent run --set train.devices=2` (in this process; the ranks are processes of their own either way), then
    `latent train` under torchrun in the same workspace: each makes exactly one pipeline parent run and one training
    run of world size 2 under it (the other rank only trains)."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "default.yaml").write_text((ROOT / "conf" / "default.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    sets = [arg for s in [*SMALL, "train.devices=2"] for arg in ("--set", s)]
    result = latent_app("run", *sets)
    assert result.exit_code == 0, result.stderr[-3000:]
    (parent,), (run,) = _pipeline_and_train_runs(tmp_path / "workspace")
    assert run.info.status == "FINISHED"
    assert run.data.params["world_size"] == "2"
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert (tmp_path / "workspace" / "latents").is_dir()

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    sets = [arg for s in [*SMALL, "train.epochs=2"] for arg in ("--set", s)]
    proc = subprocess.run(
        [*torchrun, str(LATENT), "train", "--force", *sets],
        cwd=tmp_path,
        env=clean_env(tmp_path / ".prefect"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    parents, runs = _pipeline_and_train_runs(tmp_path / "workspace")
    assert len(parents) == 2 and len(runs) == 2, "one pipeline run and one training run per command, not per rank"
    newest = max(runs, key=lambda r: r.info.start_time)
    assert newest.info.status == "FINISHED" and newest.data.params["world_size"] == "2"
    assert newest.data.tags["mlflow.parentRunId"] in {p.info.run_id for p in parents} - {parent.info.run_id}
