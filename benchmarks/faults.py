"""Fault injection: SIGKILL `latent run` at random points of preprocess, train and encode, then rerun it.

Each trial starts `latent run` as a subprocess in its own process group (so its Dask workers and Prefect's server
die with it), waits until the targeted stage is visibly at work in the workspace (a dataset table being staged, a
training's checkpoint directory, a latent table being staged), waits a random part of that stage's duration as
measured in an uninterrupted reference run, and kills the whole group with SIGKILL. It then checks what a reader
would see, reruns the same command to completion and checks again:

  half-written tables  every dataset, raw and latent table directory a reader can see (not a `.tmp-` staging
                       directory) must read whole, with the reference run's row counts; goal 0 found
  reruns completed     the rerun exits 0; goal all
  row counts equal     after the rerun every table has the rows (total and per split) of the reference run
  resumed              a training killed after its first checkpoint continues in the same MLflow run from the
                       epoch of that checkpoint (tag `latent.resumed_from_epoch`), and logs every epoch
  orphans marked       MLflow runs the killed process left RUNNING end KILLED (or FINISHED: the resumed training)
  temporaries          staging directories and partial files left by the kill are gone after the rerun

Trials reuse one workspace: each varies the config just enough that its stage has work to do (a new
`preprocess.shard_rows` gives a new dataset version, a new `train.seed` a new training and a new latent table).

    python benchmarks/faults.py [--trials 21] [--seed 0] [--epochs 20] [--markdown] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("preprocess", "train", "encode")
ENGINES = ("local", "dask")
# Small and fast, with several shards to preprocess and an encoding slow enough (one row per batch) to be hit.
BASE_SETS = [
    "preprocess.shard_rows=48",
    "dask.n_workers=2",
    "encode.batch_size=1",
    "report.n_samples=16",
    "report.n_reconstructions=8",
    "report.tsne_perplexity=20",
    "report.map_points=500",
    "report.traversal_dims=2",
    "report.probes=false",
]
POLL_S = 0.02
RUN_TIMEOUT_S = 900


def latent_command() -> list[str]:
    script = Path(sys.executable).with_name("latent")
    return [str(script)] if script.exists() else [sys.executable, "-m", "latent.flows.cli"]


def subprocess_env(home: Path) -> dict[str, str]:
    """No inherited MLflow/Prefect settings, a private Prefect home, no telemetry, a wide console."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env.update(
        PREFECT_HOME=str(home / ".prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
        COLUMNS="200",
    )
    return env


def run_preset(preset: str, workspace: Path, threads: int, sets: list[str]) -> tuple[dict, float]:
    """`latent run -c conf/<preset>.yaml` in its own process with `threads` OpenMP threads: (the metrics of the
    report it wrote, seconds). A failed run ends the benchmark with its last error lines."""
    args = [sys.executable, "-m", "latent.flows.cli", "run", "-c", str(ROOT / "conf" / f"{preset}.yaml")]
    for s in [f"workspace={workspace}", *sets]:
        args += ["--set", s]
    env = {**subprocess_env(workspace), "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{preset}: latent run failed:\n{proc.stderr[-2000:]}")
    reports = sorted((workspace / "reports").glob("*/metrics.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(reports[-1].read_text()), seconds


def run_args(workspace: Path, sets: list[str]) -> list[str]:
    args = ["run", "--config", str(ROOT / "conf" / "default.yaml"), "--set", f"workspace={workspace}"]
    for s in [*BASE_SETS, *sets]:
        args += ["--set", s]
    return args


# ---- what the workspace shows --------------------------------------------------------------------------------


def _children(path: Path) -> list[Path]:
    return sorted(path.iterdir()) if path.is_dir() else []


def temporaries(workspace: Path) -> list[Path]:
    """Every staging directory or partial file (`.tmp-*`) anywhere in the workspace."""
    return sorted(p for p in workspace.rglob(".tmp-*") if "mlartifacts" not in p.parts)


@dataclass(frozen=True)
class Snapshot:
    dataset_staging: frozenset[str]
    model_dirs: frozenset[str]
    latent_staging: frozenset[str]
    latent_tables: frozenset[str]
    finished_models: frozenset[str]


def snapshot(workspace: Path) -> Snapshot:
    datasets = _children(workspace / "datasets")
    models = _children(workspace / "models")
    latents = [t for d in _children(workspace / "latents") for t in _children(d)]
    return Snapshot(
        frozenset(p.name for p in datasets if p.name.startswith(".tmp-")),
        frozenset(p.name for p in models if not p.name.startswith(".tmp-")),
        frozenset(str(p) for p in latents if p.name.startswith(".tmp-")),
        frozenset(str(p) for p in latents if not p.name.startswith(".tmp-")),
        frozenset(p.name for p in models if (p / "weights.pt").is_file()),
    )


def stage_at(now: Snapshot, before: Snapshot) -> str:
    """The stage a run is in, judged from the workspace: what it has started writing since `before`."""
    if now.latent_staging - before.latent_staging:
        return "encode"
    training = now.model_dirs - before.model_dirs - now.finished_models
    if training:
        return "train"
    if now.dataset_staging - before.dataset_staging:
        return "preprocess"
    if now.model_dirs - before.model_dirs and not now.latent_tables - before.latent_tables:
        return "train"  # the loop is over; the model is being logged and registered
    return "other"


# ---- what a reader sees ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    rows: int
    splits: dict[str, int]


def check_tables(workspace: Path, reference: Reference) -> list[str]:
    """Problems a reader would meet: every visible raw, dataset and latent table must read whole, with the
    reference row counts (total and per split), and the catalog must list exactly the visible latent tables."""
    import duckdb
    import pyarrow.parquet as pq

    from latent.data.dataset import load_dataset_arrays, read_dataset_info
    from latent.errors import LatentError
    from latent.tables import list_tables, load_latent_arrays, read_catalog, read_table_info
    from latent.workspace import Workspace, is_temporary

    problems: list[str] = []
    for raw in _children(workspace / "raw"):
        if is_temporary(raw):
            continue
        try:
            plans = [json.loads(p.read_text()) for p in raw.glob("plan-*.json")]
            if not plans:
                problems.append(f"{raw}: no plan")
            if (raw / "raw.parquet").exists() and pq.read_metadata(raw / "raw.parquet").num_rows != reference.rows:
                problems.append(f"{raw}/raw.parquet: wrong row count")
        except (OSError, ValueError) as exc:
            problems.append(f"{raw}: {exc}")
    for dataset in _children(workspace / "datasets"):
        if is_temporary(dataset):
            continue
        try:
            info = read_dataset_info(dataset)
            ids, _, _ = load_dataset_arrays(dataset)
            splits = {s: len(load_dataset_arrays(dataset, (s,))[0]) for s in reference.splits}
            if len(ids) != reference.rows or info.rows != reference.rows or splits != reference.splits:
                problems.append(f"{dataset}: {len(ids)} rows {splits}, expected {reference.rows} {reference.splits}")
        except (LatentError, OSError, ValueError) as exc:
            problems.append(f"{dataset}: {exc}")
    visible = []
    for version in _children(workspace / "latents"):
        for table in _children(version):
            if is_temporary(table) or is_temporary(version):
                continue
            visible.append(table)
            try:
                read_table_info(table)
                arrays = load_latent_arrays(table)
                splits = {s: int((arrays["split"] == s).sum()) for s in reference.splits}
                glob = f"{table}/*/*.parquet"
                n_path = duckdb.sql(
                    f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)"
                ).fetchall()[0][0]
                if len(arrays["id"]) != reference.rows or splits != reference.splits or n_path != reference.rows:
                    problems.append(f"{table}: {len(arrays['id'])} rows {splits} ({n_path} by glob)")
            except (LatentError, OSError, ValueError, duckdb.Error) as exc:
                problems.append(f"{table}: {exc}")
    ws = Workspace(workspace)
    listed = {str(t.path) for t in list_tables(ws)}
    if visible:
        catalog = set(read_catalog(ws).column("table_path").to_pylist())
        if catalog != listed or listed != {str(t) for t in visible}:
            problems.append(f"catalog lists {len(catalog)} tables, {len(visible)} are visible")
    return problems


# ---- MLflow ------------------------------------------------------------------------------------------------------


def _client(workspace: Path):
    import mlflow

    from latent.tracking import use_tracking_uri

    uri = f"sqlite:///{workspace / 'mlflow.db'}"
    use_tracking_uri(uri)
    return mlflow.MlflowClient(uri)


def running_runs(workspace: Path) -> list[str]:
    if not (workspace / "mlflow.db").is_file():
        return []
    client = _client(workspace)
    experiment = client.get_experiment_by_name("latent")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
    return [r.info.run_id for r in runs]


def run_status(workspace: Path, run_id: str) -> str:
    return _client(workspace).get_run(run_id).info.status


def resumed_from(workspace: Path, run_id: str, epochs: int) -> tuple[str, int | None, bool]:
    """(status, tag latent.resumed_from_epoch, every epoch 1..epochs logged) of a training run."""
    client = _client(workspace)
    run = client.get_run(run_id)
    tag = run.data.tags.get("latent.resumed_from_epoch")
    steps = {m.step for m in client.get_metric_history(run_id, "val_loss")}
    return run.info.status, int(tag) if tag is not None else None, steps == set(range(1, epochs + 1))


def checkpoint_epoch(model_dir: Path) -> int | None:
    import torch

    last = model_dir / "last.pt"
    if not last.is_file():
        return None
    return int(torch.load(last, map_location="cpu", weights_only=True)["epoch"])


# ---- processes -----------------------------------------------------------------------------------------------


def _group_alive(pgid: int) -> list[int]:
    """Processes of the group that are still running (zombies excluded: nothing can run in them)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def kill_group(proc: subprocess.Popen) -> int:
    """SIGKILL the run's whole process group; returns how many of its processes outlived the signal (goal 0)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 10
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(_group_alive(proc.pid))


@dataclass
class Watch:
    """When each stage was seen at work in the workspace, and whether the process exited meanwhile."""

    first_seen: dict[str, float] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)


def start(workspace: Path, home: Path, sets: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [*latent_command(), *run_args(workspace, sets)],
            cwd=home,
            env=subprocess_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill takes Dask workers and servers with it
        )


def run_to_end(workspace: Path, home: Path, sets: list[str], log: Path) -> tuple[int, Watch, float]:
    """Run to completion, noting when each stage was at work (the reference run's stage windows)."""
    before = snapshot(workspace)
    watch = Watch()
    t0 = time.monotonic()
    proc = start(workspace, home, sets, log)
    while proc.poll() is None:
        stage = stage_at(snapshot(workspace), before)
        now = time.monotonic() - t0
        watch.first_seen.setdefault(stage, now)
        watch.last_seen[stage] = now
        if now > RUN_TIMEOUT_S:
            kill_group(proc)
            break
        time.sleep(POLL_S)
    return proc.returncode, watch, time.monotonic() - t0


# ---- one trial -----------------------------------------------------------------------------------------------


class StageProgress:
    """How far the targeted stage of a run has got, read from the workspace: None until the stage is at work,
    then (units done, units in all): shards staged of the ingest plan's partitions (preprocess), checkpoints
    written of the epochs (train), part files staged of the dataset's shards (encode with the Dask engine), or
    (0, 0) for the local encoder, which writes its files only at the end (it is killed after a random delay)."""

    def __init__(self, workspace: Path, before: Snapshot, target: str, dask: bool = False) -> None:
        self.workspace, self.before, self.target, self.dask = workspace, before, target, dask
        self.stamps: list[tuple[int, float]] = []  # (mtime of last.pt, when seen): one per checkpoint

    def poll(self, epochs: int) -> tuple[int, int] | None:
        now = snapshot(self.workspace)
        if self.target == "preprocess":
            staging = sorted(now.dataset_staging - self.before.dataset_staging)
            if not staging:
                return None
            plans = sorted((self.workspace / "raw").glob("*/plan-*.json"), key=lambda p: p.stat().st_mtime)
            total = len(json.loads(plans[-1].read_text())["partitions"])
            return len(list((self.workspace / "datasets" / staging[-1]).glob("part-*.parquet"))), total
        if self.target == "train":
            training = sorted(now.model_dirs - self.before.model_dirs)
            if not training:
                return None
            try:
                mtime = (self.workspace / "models" / training[-1] / "last.pt").stat().st_mtime_ns
            except FileNotFoundError:
                return 0, epochs
            if not self.stamps or self.stamps[-1][0] != mtime:
                self.stamps.append((mtime, time.monotonic()))
            return len(self.stamps), epochs
        staging = sorted(now.latent_staging - self.before.latent_staging)
        if not staging:
            return None
        table = Path(staging[-1])
        manifest = json.loads((self.workspace / "datasets" / table.parent.name / "manifest.json").read_text())
        if not self.dask:
            return 0, 0
        return len({p.name for p in table.glob("split=*/part-*.parquet")}), len(manifest["shards"])

    def unit_seconds(self) -> float | None:
        """Seconds per unit seen so far (an epoch, for training); None before two units."""
        if self.target == "train" and len(self.stamps) >= 2:
            return (self.stamps[-1][1] - self.stamps[0][1]) / (len(self.stamps) - 1)
        return None


@dataclass
class Trial:
    target: str
    sets: list[str]
    units: int = 0  # what the stage has to do (see StageProgress); the kill comes after a random number of them
    kill_after_units: int = 0
    delay_s: float = 0.0  # and then a random delay (see _delay_cap)
    killed_in: str = "none"  # the stage the process was in when killed ("none": it ended first)
    survivors: int = 0
    half_written_after_kill: list[str] = field(default_factory=list)
    half_written_after_rerun: list[str] = field(default_factory=list)
    rerun_ok: bool = False
    rows_equal: bool = False
    left_running: int = 0
    marked: int = 0
    checkpoint: int | None = None  # epoch of last.pt when a training was killed
    resumed: bool | None = None  # None: no training with a checkpoint was killed
    temporaries_after_kill: int = 0
    temporaries_after_rerun: int = 0
    seconds: float = 0.0


def _delay_cap(t: Trial, progress: StageProgress, windows: dict[str, float]) -> float:
    """The longest extra wait once the chosen number of units is done: about one more unit of the stage."""
    if t.target == "train":
        return progress.unit_seconds() or 1.0
    if t.units:  # shards or part files land in quick succession once the Dask cluster is up
        return 0.1
    return 0.5 * windows["encode"]


def trial(
    workspace: Path,
    home: Path,
    t: Trial,
    windows: dict[str, float],
    rng: random.Random,
    reference: Reference,
    epochs: int,
    index: int,
    min_checkpoints: int = 0,
) -> Trial:
    started = time.monotonic()
    before = snapshot(workspace)
    log = home / f"trial-{index:02d}-killed.log"
    proc = start(workspace, home, t.sets, log)
    progress = StageProgress(workspace, before, t.target, dask="encode.engine=dask" in t.sets)
    planned, reached_at = False, None
    while proc.poll() is None and time.monotonic() - started < RUN_TIMEOUT_S:
        state = progress.poll(epochs)
        if state is not None and not planned:
            planned, t.units = True, state[1]
            low = min(min_checkpoints, t.units) if t.target == "train" else 0
            t.kill_after_units = rng.randint(low, t.units)
        if reached_at is None and state is not None and state[0] >= t.kill_after_units:
            reached_at = time.monotonic()
            t.delay_s = rng.uniform(0.0, 1.0) * _delay_cap(t, progress, windows)
        if reached_at is not None and time.monotonic() - reached_at >= t.delay_s:
            t.killed_in = stage_at(snapshot(workspace), before)
            t.survivors = kill_group(proc)
            break
        time.sleep(POLL_S)
    if proc.poll() is None:  # timed out without seeing the stage
        t.survivors = kill_group(proc)
    after = snapshot(workspace)
    new_models = sorted(after.model_dirs - before.model_dirs)
    if t.killed_in == "train" and new_models:
        t.checkpoint = checkpoint_epoch(workspace / "models" / new_models[-1])
    t.half_written_after_kill = check_tables(workspace, reference)
    t.temporaries_after_kill = len(temporaries(workspace))
    orphans = running_runs(workspace)
    t.left_running = len(orphans)

    rerun = subprocess.run(
        [*latent_command(), *run_args(workspace, t.sets)],
        cwd=home,
        env=subprocess_env(home),
        capture_output=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    (home / f"trial-{index:02d}-rerun.log").write_bytes(rerun.stdout + rerun.stderr)
    t.rerun_ok = rerun.returncode == 0
    t.half_written_after_rerun = check_tables(workspace, reference)
    t.rows_equal = t.rerun_ok and not t.half_written_after_rerun and bool(snapshot(workspace).latent_tables)
    resumed_run = None
    if t.checkpoint is not None:
        resumed_run = new_models[-1]
        status, tag, every_epoch = resumed_from(workspace, resumed_run, epochs)
        t.resumed = status == "FINISHED" and tag == t.checkpoint and every_epoch
    for run_id in orphans:
        status = run_status(workspace, run_id)
        if status == "KILLED" or (run_id == resumed_run and status == "FINISHED"):
            t.marked += 1
    t.temporaries_after_rerun = len(temporaries(workspace))
    t.seconds = time.monotonic() - started
    return t


# ---- the experiment ----------------------------------------------------------------------------------------------


@dataclass
class Summary:
    seed: int
    trials: list[Trial]
    reference_seconds: float
    windows: dict[str, float]
    seconds: float

    def figures(self) -> list[tuple[str, str, str]]:
        """(check, figure, goal) rows, as in the table of docs/reliability.md."""
        ts = self.trials
        n = len(ts)
        killed = " / ".join(str(sum(t.killed_in == s for t in ts)) for s in STAGES)
        elsewhere = sum(t.killed_in not in STAGES for t in ts)
        engines = {e: sum(t.killed_in == "encode" and f"encode.engine={e}" in t.sets for t in ts) for e in ENGINES}
        resumable = [t for t in ts if t.resumed is not None]
        half = sum(len(t.half_written_after_kill) + len(t.half_written_after_rerun) for t in ts)
        return [
            (
                "trials: killed in preprocess / train / encode",
                f"{n}: {killed}"
                + (f", {elsewhere} elsewhere" if elsewhere else "")
                + f" (encode: {engines['local']} local engine, {engines['dask']} Dask)",
                "≥ 20",
            ),
            ("half-written tables a reader could see, after the kill or after the rerun", str(half), "0"),
            ("reruns completed", f"{sum(t.rerun_ok for t in ts)} / {n}", "all"),
            (
                "row counts (total and per split, every table) equal to an uninterrupted run",
                f"{sum(t.rows_equal for t in ts)} / {n}",
                "all",
            ),
            (
                "trainings killed after a checkpoint that resumed from it (same MLflow run, every epoch logged)",
                f"{sum(bool(t.resumed) for t in resumable)} / {len(resumable)}",
                "all",
            ),
            (
                "MLflow runs left RUNNING by the killed process, marked KILLED by the next run",
                f"{sum(t.marked for t in ts)} / {sum(t.left_running for t in ts)}",
                "all",
            ),
            (
                "staging directories and partial files: left by the kills, left after the reruns",
                f"{sum(t.temporaries_after_kill for t in ts)}, {sum(t.temporaries_after_rerun for t in ts)}",
                "–, 0",
            ),
            ("processes of the killed group still alive", str(sum(t.survivors for t in ts)), "0"),
        ]


def plan_trials(n: int, epochs: int, engines: tuple[str, ...] = ENGINES) -> list[Trial]:
    """Interleaved targets (preprocess, train, encode, ...), each with a config that gives its stage work;
    encodings take turns between the engines (local; dask: one part file per shard)."""
    trials = []
    for i in range(n):
        target = STAGES[i % len(STAGES)]
        if target == "preprocess":
            sets = [f"preprocess.shard_rows={49 + i}", "train.epochs=2"]
        elif target == "train":
            sets = [f"train.epochs={epochs}", f"train.seed={1000 + i}"]
        else:
            engine = engines[(i // len(STAGES)) % len(engines)]
            sets = ["train.epochs=2", f"train.seed={2000 + i}", f"encode.engine={engine}"]
        trials.append(Trial(target, sets))
    return trials


def run_experiment(
    home: Path,
    n_trials: int,
    seed: int,
    epochs: int,
    engines: tuple[str, ...] = ENGINES,
    log=print,
    min_checkpoints: int = 0,
) -> Summary:
    """The reference run (uninterrupted; it measures each stage's window), then n_trials kill-and-rerun trials.

    min_checkpoints: a training is killed only after that many checkpoints (1: every killed training can resume)."""
    from latent.data.dataset import read_dataset_info

    started = time.monotonic()
    home.mkdir(parents=True, exist_ok=True)
    workspace = home / "workspace"
    rc, watch, ref_seconds = run_to_end(workspace, home, [f"train.epochs={epochs}"], home / "reference.log")
    if rc != 0:
        raise SystemExit(f"the reference run failed (exit {rc}); see {home / 'reference.log'}")
    windows = {s: max(watch.last_seen.get(s, 0.0) - watch.first_seen.get(s, 0.0), 0.2) for s in STAGES}
    (dataset,) = [d for d in _children(workspace / "datasets") if not d.name.startswith(".tmp-")]
    info = read_dataset_info(dataset)
    reference = Reference(info.rows, {s: info.splits[s] for s in ("train", "val", "test")})
    log(
        f"reference run: {ref_seconds:.1f} s, {reference.rows} rows {reference.splits}; stage windows "
        + ", ".join(f"{s} {w:.1f} s" for s, w in windows.items())
    )
    rng = random.Random(seed)
    trials = []
    for i, t in enumerate(plan_trials(n_trials, epochs, engines)):
        t = trial(workspace, home, t, windows, rng, reference, epochs, i, min_checkpoints)
        trials.append(t)
        log(
            f"trial {i + 1:2d}/{n_trials} {t.target:<10} killed in {t.killed_in:<10} after unit "
            f"{t.kill_after_units}/{t.units} + {t.delay_s:4.2f} s  checkpoint {t.checkpoint if t.checkpoint is not None else '-'}"
            f"  resumed {t.resumed}  RUNNING {t.left_running} marked {t.marked}"
            f"  tmp {t.temporaries_after_kill}->{t.temporaries_after_rerun}  rerun {'ok' if t.rerun_ok else 'FAILED'}"
            f"  half-written {len(t.half_written_after_kill)}+{len(t.half_written_after_rerun)}  ({t.seconds:.0f} s)"
        )
        for problem in t.half_written_after_kill + t.half_written_after_rerun:
            log(f"    {problem}")
    return Summary(seed, trials, ref_seconds, windows, time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=21, help="kill-and-rerun trials, spread over the three stages")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the trainings that get killed")
    parser.add_argument("--markdown", action="store_true", help="print the table rows of docs/reliability.md")
    parser.add_argument("--keep", type=Path, default=None, help="work in this directory and keep it (logs, workspace)")
    args = parser.parse_args()
    print(f"seed {args.seed}, {args.trials} trials, {args.epochs} epochs per killed training")
    home = args.keep or Path(tempfile.mkdtemp(prefix="latent-faults-"))
    try:
        summary = run_experiment(home, args.trials, args.seed, args.epochs)
    finally:
        if args.keep is None:
            shutil.rmtree(home, ignore_errors=True)
    print(f"\n{len(summary.trials)} trials in {summary.seconds / 60:.1f} min (seed {summary.seed})")
    rows = summary.figures()
    width = max(len(r[0]) for r in rows)
    for name, figure, goal in rows:
        print(f"{name:<{width}}  {figure:<40}  goal {goal}")
    if args.markdown:
        print()
        fault = f"SIGKILL of `latent run` mid-stage, then a rerun (`benchmarks/faults.py`, seed {summary.seed})"
        for i, (name, figure, goal) in enumerate(rows):
            print(f"| {fault if i == 0 else ''} | {name} | {figure} | {goal} |")


if __name__ == "__main__":
    main()
