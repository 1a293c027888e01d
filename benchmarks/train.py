"""Training throughput: our training stage against a bare PyTorch loop of the same model, batch and data.

ours - `latent.train.train` on a dataset table: per-epoch validation, KL diagnostics and MLflow logging (SQLite),
       an atomic checkpoint every epoch, gradient clipping, the NaN guard;
bare - the textbook loop: shuffle, forward, backward, AdamW step; nothing else.
Both on the same rows (an MNIST-sized synthetic set: 60,000 × 784 in [0, 1]), same model, batch and seed, in one
run. Prints samples/s of each and the ratio (goal >= 0.90).

    python benchmarks/train.py [--rows 60000] [--epochs 3] [--batch-size 64] [--model vae_mlp]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model", default="vae_mlp")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    import numpy as np
    import torch

    from latent.config import load_config
    from latent.data import load_dataset_arrays
    from latent.data.dataset import write_dataset_table
    from latent.tracking import setup_tracking
    from latent.train import build_model, train
    from latent.workspace import Workspace

    rng = np.random.default_rng(0)
    # structured rows: 10 random prototypes with noise, clipped to [0, 1]
    prototypes = rng.random((10, args.features), dtype=np.float32)
    x = np.clip(
        prototypes[rng.integers(0, 10, args.rows)]
        + 0.1 * rng.standard_normal((args.rows, args.features), dtype=np.float32),
        0,
        1,
    )

    ours, bare = [], []
    with tempfile.TemporaryDirectory(prefix="latent-bench-train-") as tmp:
        ws = Workspace.at(Path(tmp) / "ws")
        info = write_dataset_table(ws, "bench", x, shard_rows=65536)
        for i in range(args.repeats):
            cfg = load_config(
                ROOT / "conf" / "default.yaml",
                [
                    f"workspace={ws.root}",
                    f"model.name={args.model}",
                    f"train.epochs={args.epochs}",
                    f"train.batch_size={args.batch_size}",
                    f"train.seed={i}",
                    "tracking.registered_model=null",
                    "train.device=cpu",
                ],
            )
            tracking = setup_tracking(cfg.tracking, ws)
            result = train(info.path, cfg.model, cfg.train, ws, tracking, resume="never")
            ours.append(result.samples_per_second)

            # the bare loop: same model class and config, same rows, batch, optimizer and seed
            torch.manual_seed(i)
            _, x_train, _ = load_dataset_arrays(info.path, ("train",))
            data = torch.tensor(x_train)
            model = build_model(cfg.model, info)
            optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.learning_rate)
            generator = torch.Generator().manual_seed(i)
            model.train()
            started = time.perf_counter()
            for _ in range(args.epochs):
                order = torch.randperm(len(data), generator=generator)
                for begin in range(0, len(order), args.batch_size):
                    out = model(data[order[begin : begin + args.batch_size]])
                    optimizer.zero_grad(set_to_none=True)
                    out.loss.backward()
                    optimizer.step()
            bare.append(len(data) * args.epochs / (time.perf_counter() - started))

    o, b = statistics.median(ours), statistics.median(bare)
    print(
        f"latent train benchmark: {args.model}, {args.rows:,} rows x {args.features}, batch {args.batch_size}, "
        f"{args.epochs} epochs, median of {args.repeats}, {torch.get_num_threads()} torch threads, CPU"
    )
    print(f"bare PyTorch loop:                 {b:10,.0f} samples/s")
    print(f"latent training stage:             {o:10,.0f} samples/s")
    print(f"ratio (ours / bare):               {o / b:10.2f}   (goal >= 0.90)")


if __name__ == "__main__":
    main()
