"""Bulk encoding and latent-table queries at scale, on a synthetic tabular dataset.

Prints, measured in one run:
  (a) encode rows/s (read Parquet -> model -> write the latent table, published atomically) divided by the raw
      encoder forward rows/s at the same batch size on the same rows held in memory    goal >= 0.85
  (b) peak memory (max RSS of a fresh process) encoding 1M rows divided by 100k rows     goal <= 1.2
  (c) DuckDB top-10 nearest-neighbour query latency on the 1M-row table (`latent neighbors`)

    python benchmarks/encode.py [--rows 1000000] [--features 32] [--batch-size 4096]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_dataset(workspace_dir: Path, rows: int, features: int):
    import numpy as np

    from latent.data.dataset import write_dataset_table
    from latent.workspace import Workspace

    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, features), dtype=np.float32)
    labels = rng.integers(0, 10, rows)
    return write_dataset_table(Workspace.at(workspace_dir), f"bench{rows}", x, labels=labels, shard_rows=65536)


def make_model(directory: Path, features: int) -> None:
    import torch

    from latent.models import create_model
    from latent.models.io import save_model_files

    torch.manual_seed(0)
    model = create_model("vae_mlp", input_dim=features, latent_dim=8, likelihood="gaussian")
    save_model_files(model.eval(), directory)


def child(workspace_dir: str, dataset: str, model_dir: str, batch_size: int, version: str) -> None:
    """Runs in a fresh process: encode once, report rows/s and peak RSS."""
    from latent.config import EncodeConfig
    from latent.encode import encode
    from latent.workspace import Workspace

    result = encode(dataset, model_dir, version, EncodeConfig(batch_size=batch_size), Workspace.at(workspace_dir), None)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report its parent's peak.
    status = Path("/proc/self/status").read_text()
    peak_mib = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024
    print(
        json.dumps(
            {
                "rows": result.rows,
                "rows_per_second": result.rows_per_second,
                "peak_mib": peak_mib,
                "table": result.table_path,
            }
        )
    )


def run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def raw_forward_rates(dataset: Path, model_dir: Path, batch_size: int) -> tuple[float, float]:
    """Rows/s of the bare forward pass over in-memory rows: (what a table row needs: encoder + decoder of the
    mean for recon_error, the baseline of (a); the encoder alone, for reference)."""
    import torch

    from latent.data import load_dataset_arrays
    from latent.encode import encode_array
    from latent.models.io import load_model_files

    _, x, _ = load_dataset_arrays(dataset)
    model = load_model_files(model_dir)
    encode_array(model, x[:batch_size])  # warm-up
    started = time.perf_counter()
    for start in range(0, len(x), batch_size):
        encode_array(model, x[start : start + batch_size])
    full = len(x) / (time.perf_counter() - started)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            model.encode(torch.from_numpy(x[start : start + batch_size]))
    return full, len(x) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=5, metavar=("WS", "DATASET", "MODEL", "BATCH", "VERSION"))
    args = parser.parse_args()
    if args.child:
        ws, dataset, model, batch, version = args.child
        child(ws, dataset, model, int(batch), version)
        return

    from latent.query import neighbors
    from latent.workspace import Workspace

    small_rows = args.rows // 10
    with tempfile.TemporaryDirectory(prefix="latent-bench-encode-") as tmp:
        root = Path(tmp)
        big = make_dataset(root / "ws", args.rows, args.features)
        small = make_dataset(root / "ws", small_rows, args.features)
        model_dir = root / "model"
        make_model(model_dir, args.features)

        raw, raw_encoder, ours = [], [], []
        for i in range(args.repeats):
            full, encoder_only = raw_forward_rates(big.path, model_dir, args.batch_size)
            raw.append(full)
            raw_encoder.append(encoder_only)
            r = run_child(str(root / "ws"), str(big.path), str(model_dir), str(args.batch_size), f"big{i}")
            ours.append(r["rows_per_second"])
        peak_big = run_child(str(root / "ws"), str(big.path), str(model_dir), str(args.batch_size), "mem-big")
        peak_small = run_child(str(root / "ws"), str(small.path), str(model_dir), str(args.batch_size), "mem-small")

        ws = Workspace.at(root / "ws")
        table = peak_big["table"]
        latencies = []
        for i in range(5):
            started = time.perf_counter()
            result = neighbors(ws, f"bench{args.rows}-{i * 7919:08d}", 10, "cosine", table=table)
            latencies.append(time.perf_counter() - started)
            assert result.num_rows == 10

    raw_rate, our_rate = statistics.median(raw), statistics.median(ours)
    print(
        f"latent encode benchmark: {args.rows:,} rows x {args.features} features, batch {args.batch_size}, "
        f"MLP VAE 32-256-128-8, median of {args.repeats}"
    )
    print(f"raw encoder forward only (reference):{statistics.median(raw_encoder):12,.0f} rows/s")
    print(f"raw forward, encoder + decoder:      {raw_rate:12,.0f} rows/s   (what each table row needs)")
    print(f"latent encode (Parquet in and out):  {our_rate:12,.0f} rows/s")
    print(f"(a) encode / raw forward:            {our_rate / raw_rate:12.2f}   (goal >= 0.85)")
    print(f"    encode / encoder-only forward:   {our_rate / statistics.median(raw_encoder):12.2f}")
    print(f"peak RSS encoding {args.rows:>9,} rows:     {peak_big['peak_mib']:9.0f} MiB")
    print(f"peak RSS encoding {small_rows:>9,} rows:     {peak_small['peak_mib']:9.0f} MiB")
    print(
        f"(b) peak memory {args.rows // 1000}k / {small_rows // 1000}k rows:   "
        f"{peak_big['peak_mib'] / peak_small['peak_mib']:12.2f}   (goal <= 1.2)"
    )
    print(
        f"(c) DuckDB top-10 neighbours, {args.rows:,} rows: median {statistics.median(latencies) * 1000:.0f} ms "
        f"(min {min(latencies) * 1000:.0f} ms, incl. opening the workspace)"
    )


if __name__ == "__main__":
    main()
