"""A nightly run over data that grew by 1 %: the second run's stage time as a share of the first's.

A glob of .npz files holding N rows of 8x8 digit images (scikit-learn's digits, tiled with a one-pixel jitter and
noise so that rows differ) is run once through ingest -> preprocess -> train -> encode; then a file of N/100 new
rows is added and the same config is run again. Both runs are flow runs in one process (Prefect, MLflow on SQLite,
a local Dask cluster), so the fixed start-up (imports, Prefect's ephemeral server) is paid once; it is printed
separately, as is each run's orchestration and tracking time outside the stages.

Checks: the table has exactly N + N/100 rows, no id twice, and every old row's z_mean is bit-identical to before.

    python benchmarks/incremental.py [--rows 50000] [--set train.epochs=5 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STAGES = ["ingest", "preprocess", "train", "encode"]


def make_rows(n: int, seed: int):
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    base = (d.images * (255 / 16)).astype(np.float32)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(base), n)
    x = base[pick]
    shift = rng.integers(-1, 2, n)
    for s in (-1, 1):
        x[shift == s] = np.roll(x[shift == s], s, axis=2)
    x = np.clip(x + rng.normal(0, 8, x.shape), 0, 255).astype(np.uint8)
    return x, d.target[pick]


def read_z(path: str):
    """id -> z_mean bytes of a table, read as analysts do (pyarrow over the folder)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["id", "z_mean"])
    ids = table.column("id").to_pylist()
    values = table.column("z_mean").combine_chunks().values.to_numpy(zero_copy_only=False)
    width = len(values) // max(len(ids), 1)
    return ids, {i: values[k * width : (k + 1) * width].tobytes() for k, i in enumerate(ids)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--files", type=int, default=5, help="files the first N rows are written to")
    parser.add_argument("--set", action="append", default=[], dest="sets")
    args = parser.parse_args()

    import numpy as np

    root = Path(tempfile.mkdtemp(prefix="latent-incremental-"))
    os.environ.setdefault("PREFECT_HOME", str(root / "prefect"))
    from latent.flows.pipeline import pipeline_flow

    from latent.config import load_config

    src = root / "src"
    src.mkdir()
    x, y = make_rows(args.rows, seed=0)
    for i, part in enumerate(np.array_split(np.arange(args.rows), args.files)):
        np.savez(src / f"day-000-{i:02d}.npz", x=x[part], y=y[part])
    sets = ["dataset.source=npz", f"dataset.path={src}/*.npz", "dataset.name=nightly", "train.epochs=5", *args.sets]
    cfg = load_config(ROOT / "conf" / "default.yaml", [f"workspace={root / 'ws'}", *sets])
    startup = time.perf_counter() - STARTED

    def run(label: str) -> tuple[Any, float]:
        t = time.perf_counter()
        result = pipeline_flow(cfg.model_dump(mode="json"), STAGES)
        wall = time.perf_counter() - t
        stages = sum(result.durations.values())
        print(
            f"{label:7s} stages {stages:7.2f} s  ("
            + ", ".join(f"{k} {v:.2f}" for k, v in result.durations.items())
            + f")  flow wall {wall:.2f} s (outside the stages {wall - stages:.2f} s)",
            flush=True,
        )
        return result, stages

    first, first_seconds = run("first")
    before_ids, before = read_z(first.stages["encode"].published_path)
    grow = args.rows // 100
    x2, y2 = make_rows(grow, seed=1)
    np.savez(src / "day-001-00.npz", x=x2, y=y2)
    second, second_seconds = run("grown")
    ids, after = read_z(second.stages["encode"].published_path)
    enc = second.stages["encode"]

    print(f"fixed start-up (imports, config, data generation): {startup:.2f} s")
    print(f"rows: first {len(before_ids)}, grown {len(ids)} (+{enc.rows_added} -{enc.rows_deleted})")
    print(f"drift of the new rows: {enc.drift}; retrained: {enc.retrained}")
    ratio = second_seconds / first_seconds
    same = ("ingest", "preprocess", "encode")
    part = sum(second.durations.get(s, 0) for s in same) / sum(first.durations[s] for s in same)
    print(f"second run's stage time / first's: {ratio:.3f} (goal <= 0.1)")
    print(f"  ingest + preprocess + encode alone: {part:.3f}")
    checks = {
        f"exactly {args.rows + grow} rows": len(ids) == args.rows + grow,
        "no duplicate ids": len(set(ids)) == len(ids),
        "old rows' z_mean bit-identical": all(after.get(i) == z for i, z in before.items()),
    }
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    print(f"workspace: {root}")
    if not all(checks.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
