"""Where the pipeline's time goes: real work versus orchestration (Prefect) and tracking (MLflow).

Measured in one run, each repeat on a fresh workspace:
  bare   - the same library stages called directly, with no Prefect and MLflow off (tracking=None): the baseline;
  latent - `latent run` as a user runs it (new process, Prefect ephemeral server, MLflow on SQLite);
  rerun  - `latent run` again on the same workspace with unchanged inputs (every stage reused).
Prints per-stage wall time, the share of `latent run`'s wall time that is overhead over the bare baseline, and the
rerun's wall time as a ratio of the first run's.

    python benchmarks/pipeline.py [--repeats 3] [--set train.epochs=100 ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STAGES = ("ingest", "preprocess", "train", "encode", "report")


def bare(workspace: Path, sets: list[str]) -> dict[str, float]:
    from latent.config import load_config
    from latent.data import ingest, preprocess
    from latent.encode import encode
    from latent.report import build_report
    from latent.train import train
    from latent.workspace import Workspace

    cfg = load_config(ROOT / "conf" / "default.yaml", [f"workspace={workspace}", *sets])
    ws = Workspace.at(cfg.workspace)
    times: dict[str, float] = {}
    t = time.perf_counter()
    ing = ingest(cfg.dataset, ws)
    times["ingest"] = time.perf_counter() - t
    t = time.perf_counter()
    pre = preprocess(ing.raw_path, ing.fingerprint, cfg.preprocess, cfg.dask, ws)
    times["preprocess"] = time.perf_counter() - t
    t = time.perf_counter()
    tr = train(pre.dataset_path, cfg.model, cfg.train, ws, None)
    times["train"] = time.perf_counter() - t
    t = time.perf_counter()
    enc = encode(pre.dataset_path, tr.model_uri, tr.model_version, cfg.encode, ws, None)
    times["encode"] = time.perf_counter() - t
    t = time.perf_counter()
    build_report(enc.table_path, pre.dataset_path, tr.model_uri, cfg.report, ws, None)
    times["report"] = time.perf_counter() - t
    return times


def full(workspace: Path, sets: list[str]) -> tuple[float, dict[str, float], dict[str, float]]:
    import mlflow

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    args = [a for s in [f"workspace={workspace}", *sets] for a in ("--set", s)]
    cmd = [str(Path(sys.executable).with_name("latent")), "run", *args]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"latent run failed:\n{proc.stderr[-3000:]}")
    client = mlflow.MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    exp = client.get_experiment_by_name("latent")
    parent = client.search_runs([exp.experiment_id], "tags.`latent.kind` = 'pipeline'")[0]  # newest first
    m = parent.data.metrics
    return wall, {s: m[f"duration_{s}_s"] for s in STAGES}, {s: m[f"work_{s}_s"] for s in STAGES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    bares, walls, tasks, works, rerun_walls, rerun_tasks = [], [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="latent-bench-") as tmp:
        for i in range(args.repeats):
            bares.append(bare(Path(tmp) / f"bare{i}", args.sets))
            wall, task, work = full(Path(tmp) / f"full{i}", args.sets)
            walls.append(wall)
            tasks.append(task)
            works.append(work)
            rerun_wall, rerun_task, _ = full(Path(tmp) / f"full{i}", args.sets)
            rerun_walls.append(rerun_wall)
            rerun_tasks.append(rerun_task)

    def med(rows: list[dict[str, float]], stage: str) -> float:
        return statistics.median(r[stage] for r in rows)

    print(f"latent pipeline benchmark: median of {args.repeats} runs, {os.cpu_count()} CPUs")
    print(f"{'stage':<12}{'bare (s)':>10}{'in task (s)':>13}{'task (s)':>10}{'rerun (s)':>11}")
    for s in STAGES:
        print(f"{s:<12}{med(bares, s):>10.2f}{med(works, s):>13.2f}{med(tasks, s):>10.2f}{med(rerun_tasks, s):>11.2f}")
    bare_total = statistics.median(sum(b.values()) for b in bares)
    work_total = statistics.median(sum(w.values()) for w in works)
    task_total = statistics.median(sum(t.values()) for t in tasks)
    wall = statistics.median(walls)
    print(f"{'sum':<12}{bare_total:>10.2f}{work_total:>13.2f}{task_total:>10.2f}")
    print(f"latent run wall time (process start to exit): {wall:.2f} s")
    print("overhead over the bare library, as a share of latent run's wall time:")
    print(f"  MLflow tracking inside stages (in task - bare): {(work_total - bare_total) / wall:6.1%}")
    print(f"  Prefect task wrapping (task - in task):         {(task_total - work_total) / wall:6.1%}")
    print(f"  process, imports, Prefect server, MLflow setup: {(wall - task_total) / wall:6.1%}")
    print(f"  total overhead (wall - bare):                   {(wall - bare_total) / wall:6.1%}")
    print(f"  real work (bare / wall):                        {bare_total / wall:6.1%}")
    rerun = statistics.median(rerun_walls)
    rerun_stages = statistics.median(sum(t.values()) for t in rerun_tasks)
    print(f"rerun with unchanged inputs (all stages reused): {rerun:.2f} s wall, stages {rerun_stages:.2f} s")
    print(f"  rerun / first run, wall time:   {rerun / wall:.2f}")
    print(f"  rerun / first run, stages only: {rerun_stages / task_total:.2f}")


if __name__ == "__main__":
    main()
