"""Training at scale: memory of a streamed epoch, streaming's cost, and data-parallel processes, in one run.

(a) peak resident memory of `latent train` (one epoch, train.data=stream) on the full shapes grid (737,280 images of
    64×64) ÷ the same on a 73,728-row subset — goal ≤ 1.3 — and the full-grid peak itself (goal ≤ 3 GB). Memory is
    the sum over the `latent train` process and its children (DataLoader workers), sampled every 50 ms; the
    ephemeral Prefect server it starts is left out (a fixed cost that does not grow with the data).
(b) samples/s streaming ÷ in-memory on benchmarks/train.py's job (60,000 × 784, vae_mlp, batch 64) — goal ≥ 0.90.
(c) samples/s with 2 CPU processes (DDP over gloo) ÷ 1 process, same global batch (on 2 cores expect about 1).

    python benchmarks/train_scale.py [--workspace DIR] [--full-rows N] [--subset-rows 73728] [--skip a,b,c]

The workspace is kept, so a second run reuses the preprocessed shapes tables (preprocessing the full grid is the
slow part: minutes).
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

from benchmarks.faults import latent_command, subprocess_env  # noqa: E402

SHAPES_MODEL = ["model.latent_dim=10", "model.hidden_dims=[256,128]", "train.batch_size=128"]


def _tree_rss(root) -> int:
    import psutil

    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            if "prefect.server" in " ".join(proc.cmdline()):  # the ephemeral API server: fixed, not the data's
                continue
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def peak_rss(command: list[str], env: dict[str, str], cwd: Path) -> tuple[int, float]:
    """(peak resident bytes of the command's process tree, seconds) of one run; fails loudly if it fails."""
    import psutil

    started = time.monotonic()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        root, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                peak = max(peak, _tree_rss(root))
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        if proc.returncode != 0:
            log.seek(0)
            raise SystemExit(f"{' '.join(command)} failed:\n{log.read().decode()[-3000:]}")
    return peak, time.monotonic() - started


def memory_part(workspace: Path, full_rows: int | None, subset_rows: int) -> None:
    env = subprocess_env(workspace.parent)
    peaks = {}
    for label, rows in (("subset", subset_rows), ("full", full_rows)):
        n = "null" if rows is None else str(rows)
        sets = [f"workspace={workspace}", "dataset.source=shapes", f"dataset.name=shapes-{label}"]
        sets += [f"dataset.shapes.n_samples={n}", "preprocess.shard_rows=8192", *SHAPES_MODEL]
        args = [a for s in sets for a in ("--set", s)]
        t0 = time.monotonic()
        for stage in ("ingest", "preprocess"):
            subprocess.run(
                [*latent_command(), stage, *args], env=env, cwd=workspace.parent, check=True, capture_output=True
            )
        prep = time.monotonic() - t0
        train_sets = ["train.epochs=1", "train.data=stream", "tracking.registered_model=null", "train.seed=0"]
        peak, seconds = peak_rss(
            [*latent_command(), "train", "--force", *args, *(a for s in train_sets for a in ("--set", s))],
            env,
            workspace.parent,
        )
        peaks[label] = peak
        shown = "737,280" if rows is None else f"{rows:,}"
        print(
            f"(a) {label:<6} {shown:>9} rows: peak RSS {peak / 2**30:5.2f} GiB, one streamed epoch {seconds:6.1f} s "
            f"(ingest + preprocess {prep:.0f} s, reused when present)"
        )
    ratio = peaks["full"] / peaks["subset"]
    print(
        f"(a) peak RSS full / subset: {ratio:.2f} (goal <= 1.3); full-grid peak {peaks['full'] / 1e9:.2f} GB (goal <= 3)"
    )


def _rate(dataset: Path, ws, data: str, devices: int, seed: int, epochs: int = 2) -> float:
    from latent.config import load_config
    from latent.tracking import setup_tracking
    from latent.train import train

    cfg = load_config(
        ROOT / "conf" / "default.yaml",
        [
            f"workspace={ws.root}",
            f"train.epochs={epochs}",
            "train.batch_size=64",
            f"train.seed={seed}",
            f"train.data={data}",
            f"train.devices={devices}",
            "train.device=cpu",
            "tracking.registered_model=null",
        ],
    )
    return train(dataset, cfg.model, cfg.train, ws, setup_tracking(cfg.tracking, ws), resume="never").samples_per_second


def throughput_parts(parts: set[str], repeats: int, epochs: int) -> None:
    """One warm-up run (discarded: it pays the process's first imports and the MLflow store's creation), then
    `repeats` rounds of (in memory, streamed, 2 processes), each round with the next seed and the order of its runs
    reversed every other round, so that neither warm-up nor a shared machine's changing load favours one mode; the
    ratios are medians of each round's ratio."""
    import numpy as np

    from latent.data.dataset import write_dataset_table
    from latent.workspace import Workspace

    rng = np.random.default_rng(0)
    prototypes = rng.random((10, 784), dtype=np.float32)
    x = np.clip(prototypes[rng.integers(0, 10, 60_000)] + 0.1 * rng.standard_normal((60_000, 784), np.float32), 0, 1)
    rates: dict[str, list[float]] = {"memory": [], "stream": [], "two": []}
    runs = [("memory", "memory", 1)]
    if "b" in parts:
        runs.append(("stream", "stream", 1))
    if "c" in parts:
        runs.append(("two", "memory", 2))
    with tempfile.TemporaryDirectory(prefix="latent-bench-scale-") as tmp:
        ws = Workspace.at(Path(tmp) / "ws")
        info = write_dataset_table(ws, "bench", x, shard_rows=8192)
        _rate(info.path, ws, "memory", 1, 0, epochs=1)  # warm-up
        for seed in range(repeats):
            for key, data, devices in runs if seed % 2 == 0 else runs[::-1]:
                rates[key].append(_rate(info.path, ws, data, devices, seed, epochs))
    memory = statistics.median(rates["memory"])
    shown = lambda values: ", ".join(f"{v:,.0f}" for v in values)  # noqa: E731
    if "b" in parts:
        ratios = [s / m for s, m in zip(rates["stream"], rates["memory"], strict=True)]
        print(
            f"(b) 60,000 x 784, batch 64: in memory {memory:,.0f} samples/s ({shown(rates['memory'])}), streamed "
            f"{statistics.median(rates['stream']):,.0f} samples/s ({shown(rates['stream'])}), ratio "
            f"{statistics.median(ratios):.3f} (rounds: {', '.join(f'{r:.3f}' for r in ratios)}; goal >= 0.90)"
        )
    if "c" in parts:
        ratios = [t / m for t, m in zip(rates["two"], rates["memory"], strict=True)]
        print(
            f"(c) DDP gloo, global batch 64: 1 process {memory:,.0f} samples/s, 2 processes "
            f"{statistics.median(rates['two']):,.0f} samples/s ({shown(rates['two'])}), ratio "
            f"{statistics.median(ratios):.2f} ({os.cpu_count()} cores here)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=Path(tempfile.gettempdir()) / "latent-train-scale" / "ws")
    parser.add_argument("--full-rows", type=int, default=None, help="rows of the 'full' table (default: the grid)")
    parser.add_argument("--subset-rows", type=int, default=73_728)
    parser.add_argument("--skip", default="", help="parts to skip, e.g. a or b,c")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each throughput run")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    parts = {"a", "b", "c"} - set(args.skip.split(","))
    if "a" in parts:
        args.workspace.parent.mkdir(parents=True, exist_ok=True)
        memory_part(args.workspace, args.full_rows, args.subset_rows)
    if parts & {"b", "c"}:
        throughput_parts(parts, args.repeats, args.epochs)


if __name__ == "__main__":
    main()
