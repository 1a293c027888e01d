"""Scheduled runs on data that grows: incremental ingest, snapshots of dataset and latent tables, drift, the
retrain policy, and a kill during an append. Real flows (Prefect's harness), MLflow on SQLite, real training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from latent.flows.pipeline import pipeline_flow

from latent import lineage
from latent.analysis.drift import drift_figures, should_retrain
from latent.tables import read_series, table_files
from latent.tracking import setup_tracking
from latent.workspace import Workspace
from tests.helpers import ROOT, small_config

STAGES = ["ingest", "preprocess", "train", "encode"]


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images * (255 / 16)).round().astype(np.uint8), d.target


def run(cfg) -> dict:
    return pipeline_flow(cfg.model_dump(mode="json"), STAGES)


def read_z(path: str | Path) -> pd.DataFrame:
    """id -> z_mean of a table, read the way analysts do: pandas on the folder."""
    frame = pd.read_parquet(path, columns=["id", "z_mean"])
    return frame.set_index("id")


def count_ids(path: str) -> list[tuple]:
    """(rows, distinct ids) of a table, read the way analysts do: DuckDB over a glob of its files."""
    import duckdb

    return duckdb.sql(f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{path}/**/*.parquet')").fetchall()


# ---- unit: the drift figures and the policy -------------------------------------------------------------------


@pytest.mark.unit
def test_the_retrain_policy_is_a_function_of_the_drift():
    drifted, calm = (
        {"mmd2": 0.5, "recon_ratio": 3.0, "drifted": True},
        {"mmd2": 0.0, "recon_ratio": 1.0, "drifted": False},
    )
    assert [should_retrain("on_drift", d) for d in (drifted, calm, None)] == [True, False, False]
    assert [should_retrain("always", d) for d in (drifted, calm, None)] == [True, True, True]
    assert [should_retrain("never", d) for d in (drifted, calm, None)] == [False, False, False]


@pytest.mark.unit
def test_drift_figures_tell_a_shifted_sample_from_a_fresh_one():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(800, 4))
    same = drift_figures(rng.normal(size=(200, 4)), np.ones(200), train, np.ones(800), 0.05, 1.5)
    moved = drift_figures(rng.normal(size=(200, 4)) + 1.5, np.full(200, 3.0), train, np.ones(800), 0.05, 1.5)
    assert same is not None and moved is not None
    assert not same["drifted"] and same["mmd2"] < 0.02 and same["recon_ratio"] == 1.0
    assert moved["drifted"] and moved["mmd2"] > 0.2 and moved["recon_ratio"] == 3.0
    assert drift_figures(train[:1], np.ones(1), train, np.ones(800), 0.05, 1.5) is None


# ---- a glob of npz files grows, loses a file, then drifts -----------------------------------------------------


@pytest.fixture(scope="module")
def npz_series(prefect_harness, tmp_path_factory):
    """Four runs of one config over `src/*.npz`: 1,200 digits; +200 (unshifted); a.npz deleted; +397 inverted."""
    root = tmp_path_factory.mktemp("npz")
    (root / "src").mkdir()
    x, y = digits()
    np.savez(root / "src" / "a.npz", x=x[:1200], y=y[:1200])
    cfg = small_config(
        root / "ws", "dataset.source=npz", f"dataset.path={root}/src/*.npz", "dataset.name=grow", "train.epochs=4"
    )
    runs = {"first": run(cfg)}
    runs["first_rows"] = read_z(runs["first"].stages["encode"].published_path)
    np.savez(root / "src" / "b.npz", x=x[1200:1400], y=y[1200:1400])
    runs["grown"] = run(cfg)
    runs["grown_rows"] = read_z(runs["grown"].stages["encode"].published_path)
    runs["grown_duckdb"] = count_ids(runs["grown"].stages["encode"].published_path)
    runs["rerun"] = run(cfg)  # nothing changed since
    (root / "src" / "a.npz").unlink()
    runs["deleted"] = run(cfg)
    runs["deleted_rows"] = read_z(runs["deleted"].stages["encode"].published_path)
    np.savez(root / "src" / "c.npz", x=255 - x[1400:], y=y[1400:])
    runs["inverted"] = run(cfg)
    return cfg, runs


@pytest.mark.integration
def test_rows_of_a_new_file_are_appended_and_old_rows_are_untouched(npz_series):
    _, runs = npz_series
    first, grown = runs["first"].stages, runs["grown"].stages
    assert grown["preprocess"].rows_added == 200 and grown["preprocess"].parent
    assert "train" not in grown  # the config did not change and the new rows did not drift: no training
    # a stage run alone on the snapshot (`latent encode`) finds the model its rows were appended with
    cfg = npz_series[0]
    tracking = setup_tracking(cfg.tracking, Workspace.at(cfg.workspace))
    assert lineage.model_for(tracking, grown["preprocess"].dataset_path)[0] == first["train"].model_uri
    encode = grown["encode"]
    assert (encode.rows_added, encode.rows_deleted, encode.retrained) == (200, 0, False)
    assert encode.drift is not None and encode.drift["drifted"] is False
    rows, before = runs["grown_rows"], runs["first_rows"]
    assert len(rows) == 1400 and rows.index.is_unique
    old = rows.loc[before.index]
    assert all(np.array_equal(a, b) for a, b in zip(old["z_mean"], before["z_mean"], strict=True))
    # the old rows' files are the previous snapshot's, not copies: the same inodes
    old_inodes = {p.stat().st_ino for p in table_files(Path(first["encode"].table_path))}
    assert old_inodes <= {p.stat().st_ino for p in table_files(Path(encode.table_path))}
    # the previous snapshot is still whole and readable, and the catalog lists both with their row counts
    assert len(read_z(first["encode"].table_path)) == 1200
    assert runs["grown_duckdb"] == count_ids(encode.table_path) == [(1400, 1400)]
    from latent.tables import read_catalog

    catalog = read_catalog(Workspace.at(npz_series[0].workspace)).to_pandas().set_index("table_path")
    assert catalog.loc[encode.table_path, ["rows", "rows_added", "parent_table"]].tolist() == [
        1400,
        200,
        first["encode"].table_path,
    ]


@pytest.mark.integration
def test_a_rerun_on_unchanged_data_reuses_the_appended_snapshot(npz_series):
    _, runs = npz_series
    rerun = runs["rerun"].stages
    assert "train" not in rerun and rerun["encode"].reused
    assert rerun["encode"].table_path == runs["grown"].stages["encode"].table_path
    assert rerun["encode"].rows_added == 0 and rerun["preprocess"].reused


@pytest.mark.integration
def test_a_deleted_files_rows_leave_the_next_snapshot(npz_series):
    _, runs = npz_series
    encode = runs["deleted"].stages["encode"]
    assert (encode.rows_added, encode.rows_deleted) == (0, 1200)
    rows = runs["deleted_rows"]
    assert len(rows) == 200 and all(i.startswith("b-") for i in rows.index)
    assert all(
        np.array_equal(a, b) for a, b in zip(rows["z_mean"], runs["grown_rows"].loc[rows.index, "z_mean"], strict=True)
    )


@pytest.mark.integration
def test_a_shifted_batch_is_tagged_as_drift_and_retrains_under_on_drift(npz_series):
    cfg, runs = npz_series
    inverted = runs["inverted"]
    encode = inverted.stages["encode"]
    assert encode.drift["drifted"] is True and encode.drift["recon_ratio"] > cfg.train.drift_recon_ratio
    assert encode.retrained is True and not inverted.stages["train"].reused
    first_model = runs["first"].stages["train"].model_version
    assert inverted.stages["train"].model_version != first_model
    # every row of the snapshot was encoded with the new model, into the table the published path now shows
    published = read_series(Workspace.at(cfg.workspace), "grow-vae_mlp")
    assert published["table"] == encode.table_path
    assert published["model_version"] == inverted.stages["train"].model_version
    assert len(pd.read_parquet(encode.published_path, columns=["id"])) == 200 + 397
    client = mlflow.MlflowClient(inverted.tracking_uri)
    assert client.get_run(inverted.pipeline_run_id).data.tags["latent.drift"] == "true"
    appended = client.get_run(inverted.stages["append"].run_id)
    assert appended.data.tags["latent.drift"] == "true" and appended.data.metrics["drift_mmd2"] > cfg.train.drift_mmd
    grown = client.get_run(runs["grown"].stages["encode"].run_id)
    assert grown.data.tags["latent.drift"] == "false" and "drift_recon_ratio" in grown.data.metrics


# ---- an image folder grows by files, one changes, two go ------------------------------------------------------


@pytest.mark.integration
def test_an_image_folder_grows_by_files(prefect_harness, tmp_path):
    from PIL import Image

    x, y = digits()
    folder = tmp_path / "images"
    for i in range(60):
        (folder / str(y[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i]).save(folder / str(y[i]) / f"{i:03d}.png")
    cfg = small_config(
        tmp_path / "ws",
        "dataset.source=image_folder",
        f"dataset.path={folder}",
        "dataset.name=imgs",
        "train.epochs=2",
        "train.retrain=never",
    )
    first = run(cfg).stages
    before = read_z(first["encode"].published_path)
    for i in range(60, 70):
        (folder / str(y[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i]).save(folder / str(y[i]) / f"{i:03d}.png")
    changed = folder / str(y[5]) / "005.png"
    Image.fromarray(255 - x[5]).save(changed)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime even on a coarse clock
    gone = [folder / str(y[i]) / f"{i:03d}.png" for i in (7, 8)]
    for path in gone:
        path.unlink()
    second = run(cfg).stages
    assert (second["preprocess"].rows_added, second["preprocess"].rows_deleted) == (11, 3)
    assert (second["encode"].rows_added, second["encode"].rows_deleted) == (11, 3)
    rows = read_z(second["encode"].published_path)
    assert len(rows) == 68 and rows.index.is_unique
    assert not {str(p.relative_to(folder)) for p in gone} & set(rows.index)
    kept = [i for i in before.index if i in rows.index and i != str(changed.relative_to(folder))]
    assert len(kept) == 57
    assert all(np.array_equal(a, b) for a, b in zip(rows.loc[kept, "z_mean"], before.loc[kept, "z_mean"], strict=True))
    assert not np.array_equal(
        rows.loc[str(changed.relative_to(folder)), "z_mean"], before.loc[str(changed.relative_to(folder)), "z_mean"]
    )


# ---- SIGKILL during an append ---------------------------------------------------------------------------------

APPEND_SCRIPT = """
import json, sys
from latent.config import Config
from latent.encode import append
from latent.lineage import growth_of
from latent.tracking import setup_tracking
from latent.workspace import Workspace
cfg = Config.model_validate(json.loads(sys.argv[1]))
ws = Workspace.at(cfg.workspace)
growth = growth_of(cfg, ws, sys.argv[2])
assert growth is not None
append(sys.argv[2], growth.previous_table, growth.model_uri, growth.model_version, cfg.encode, cfg.train, ws,
       setup_tracking(cfg.tracking, ws), growth.train_run_id)
"""


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_sigkill_during_an_append_leaves_the_previous_snapshot_whole(prefect_harness, tmp_path):
    from latent.data import ingest, preprocess

    x, y = digits()
    (tmp_path / "src").mkdir()
    np.savez(tmp_path / "src" / "a.npz", x=x[:1000], y=y[:1000])
    cfg = small_config(
        tmp_path / "ws",
        "dataset.source=npz",
        f"dataset.path={tmp_path}/src/*.npz",
        "dataset.name=killed",
        "train.epochs=1",
        "train.retrain=never",
        "encode.batch_size=8",  # a slow append, so that the kill lands inside it
    )
    first = run(cfg).stages["encode"]
    np.savez(tmp_path / "src" / "b.npz", x=np.tile(x, (8, 1, 1)), y=np.tile(y, 8))  # 14,376 new rows
    ws = Workspace.at(cfg.workspace)
    ing = ingest(cfg.dataset, ws, shard_rows=cfg.preprocess.shard_rows)
    pre = preprocess(ing.raw_path, ing.fingerprint, cfg.preprocess, cfg.dask, ws)
    snapshot_dir = ws.latents_root / pre.dataset_version
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", APPEND_SCRIPT, cfg.model_dump_json(), pre.dataset_path],
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    staging = []
    while time.monotonic() < deadline and proc.poll() is None:
        staging = list(snapshot_dir.glob(".tmp-*/split=*/part-*.parquet")) if snapshot_dir.is_dir() else []
        if any(p.name.startswith(f"part-{pre.dataset_version[:10]}") for p in staging):
            break  # new rows are being written
        time.sleep(0.005)
    assert proc.poll() is None, "the append ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # the published path still shows the previous snapshot, whole; no new snapshot table was published
    assert len(read_z(first.published_path)) == 1000
    assert not [p for p in snapshot_dir.iterdir() if not p.name.startswith(".tmp-")]
    again = run(cfg).stages["encode"]
    rows = read_z(again.published_path)
    assert len(rows) == 1000 + 14376 and rows.index.is_unique
    assert again.rows_added == 14376 and not list(snapshot_dir.glob(".tmp-*"))


# ---- a glob of CSV files grows: rows of the new file only, the scaler of the first snapshot kept -----------------


@pytest.mark.integration
def test_a_csv_glob_grows_by_a_file_and_keeps_the_first_snapshots_scaler(tmp_path):
    from latent.data import ingest, preprocess
    from latent.data.dataset import load_dataset_arrays, read_dataset_info, read_increment

    rng = np.random.default_rng(0)
    (tmp_path / "src").mkdir()

    def write(name: str, n: int, shift: float) -> None:
        frame = pd.DataFrame(rng.normal(shift, 1.0, size=(n, 3)), columns=["a", "b", "c"])
        frame.assign(label=rng.integers(0, 2, n)).to_csv(tmp_path / "src" / name, index=False)

    write("day1.csv", 300, 0.0)
    cfg = small_config(
        tmp_path / "ws", "dataset.source=tabular", f"dataset.path={tmp_path}/src/*.csv", "dataset.tabular.label=label"
    )
    ws = Workspace.at(cfg.workspace)

    def snapshot():
        ing = ingest(cfg.dataset, ws, shard_rows=cfg.preprocess.shard_rows)
        return preprocess(ing.raw_path, ing.fingerprint, cfg.preprocess, cfg.dask, ws)

    first = snapshot()
    write("day2.csv", 40, 5.0)  # rows from elsewhere: a scaler refitted on them would move every old row
    second = snapshot()
    assert (second.parent, second.rows_added, second.rows_deleted, second.n_rows) == (first.dataset_version, 40, 0, 340)
    assert read_dataset_info(second.dataset_path).transform == read_dataset_info(first.dataset_path).transform
    ids, x, _ = load_dataset_arrays(second.dataset_path)
    old_ids, old_x, _ = load_dataset_arrays(first.dataset_path)
    index = {i: k for k, i in enumerate(ids)}
    assert len(index) == 340 and np.array_equal(x[[index[i] for i in old_ids]], old_x)
    assert [s.startswith("day2-") for s in ids].count(True) == 40
    assert read_increment(second.dataset_path)["new_shards"] and snapshot().reused


@pytest.mark.integration
def test_the_command_line_summary_says_what_a_grown_run_did(npz_series, monkeypatch):
    from latent.flows import display
    from rich.console import Console

    _, runs = npz_series
    shown = {}
    for name in ("grown", "inverted"):
        console = Console(record=True, width=200)
        monkeypatch.setattr(display, "out", console)
        display.pipeline_summary(runs[name])
        shown[name] = console.export_text()
    assert "grown: +200 -0 rows" in shown["grown"] and "(no drift); appended with the table's model" in shown["grown"]
    assert "(drifted); retrained and re-encoded every row" in shown["inverted"]
    assert "table: " + runs["inverted"].encode.published_path in shown["inverted"]
