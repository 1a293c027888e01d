"""Preprocessing at scale: throughput, scaling with Dask workers, and memory that does not grow with the data.

Prints, measured in one run:
  rows/s of image-folder preprocessing (PNG decode, grayscale, resize: CPU-bound);
  wall time with 2 Dask workers divided by 1 worker on the same job                  goal <= 0.6
  peak memory (all processes: driver + workers) for 10k vs 100k images                goal: larger <= 1.2x
  the full `shapes` grid (737,280 images, 64x64) preprocessed, with its peak memory    goal < 4 GB

    python benchmarks/preprocess.py [--small 10000] [--large 100000] [--skip-shapes] [--photos 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_images(root: Path, n: int, side: int = 64, fmt: str = "png") -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:06d}.{fmt}", **({"quality": 90} if fmt == "jpg" else {}))


def child(workspace: str, workers: int, sets: list[str]) -> None:
    from latent.config import load_config
    from latent.data import ingest, preprocess
    from latent.workspace import Workspace

    cfg = load_config(ROOT / "conf" / "default.yaml", [f"workspace={workspace}", f"dask.n_workers={workers}", *sets])
    ws = Workspace.at(cfg.workspace)
    started = time.perf_counter()
    ing = ingest(cfg.dataset, ws, shard_rows=cfg.preprocess.shard_rows)
    listed = time.perf_counter()
    pre = preprocess(ing.raw_path, ing.fingerprint, cfg.preprocess, cfg.dask, ws, force=True)
    done = time.perf_counter()
    print(
        json.dumps(
            {"rows": pre.n_rows, "seconds": done - started, "ingest": listed - started, "preprocess": done - listed}
        )
    )


def measured(workspace: Path, workers: int, sets: list[str]) -> dict:
    """Run one preprocessing in a fresh process; sample the RSS of it and all its children (the Dask workers)."""
    import psutil

    args = [sys.executable, __file__, "--child", str(workspace), str(workers), json.dumps(sets)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(err[-3000:])
    return {**json.loads(out.strip().splitlines()[-1]), "peak_mib": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--skip-shapes", action="store_true")
    parser.add_argument(
        "--photos",
        type=int,
        default=0,
        help="also time 1 vs 2 workers on this many 128x128 JPEGs resized to 64x64 RGB (heavier decoding per file)",
    )
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), json.loads(args.child[2]))
        return
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory(prefix="latent-bench-pre-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        make_images(root / "small", args.small)
        make_images(root / "large", args.large)
        print(f"made {args.small + args.large:,} PNG files (64x64 RGB) in {time.perf_counter() - t:.0f} s")
        folder = ["dataset.source=image_folder", "dataset.image.size=[32, 32]", "preprocess.shard_rows=2000"]
        one = measured(root / "w1", 1, [*folder, f"dataset.path={root / 'large'}"])
        two = measured(root / "w2", 2, [*folder, f"dataset.path={root / 'large'}"])
        small = measured(root / "ws", 2, [*folder, f"dataset.path={root / 'small'}"])
        print(
            f"image folder, {args.large:,} images: 1 worker {one['seconds']:.1f} s ({one['rows'] / one['seconds']:,.0f}"
            f" rows/s), 2 workers {two['seconds']:.1f} s ({two['rows'] / two['seconds']:,.0f} rows/s)"
        )
        print(
            f"  of which ingest (listing and fingerprinting the files, one process): {one['ingest']:.1f} s / "
            f"{two['ingest']:.1f} s"
        )
        print(
            f"  2 workers / 1 worker wall time, preprocessing (the Dask part): "
            f"{two['preprocess'] / one['preprocess']:.2f}   (goal <= 0.6); ingest + preprocessing: "
            f"{two['seconds'] / one['seconds']:.2f}"
        )
        print(
            f"  peak memory, all processes: {small['peak_mib']:.0f} MiB for {args.small:,} images, "
            f"{two['peak_mib']:.0f} MiB for {args.large:,}: ratio {two['peak_mib'] / small['peak_mib']:.2f}"
            "   (goal <= 1.2)"
        )
        if args.photos:
            make_images(root / "photos", args.photos, side=128, fmt="jpg")
            photos = ["dataset.source=image_folder", "dataset.image.size=[64, 64]", "dataset.image.mode=rgb"]
            photos += ["preprocess.shard_rows=2000", f"dataset.path={root / 'photos'}"]
            p1 = measured(root / "p1", 1, photos)
            p2 = measured(root / "p2", 2, photos)
            print(
                f"image folder, {args.photos:,} JPEGs 128x128 -> 64x64 RGB: 1 worker {p1['preprocess']:.1f} s, "
                f"2 workers {p2['preprocess']:.1f} s (the Dask part): ratio {p2['preprocess'] / p1['preprocess']:.2f}"
                f"   (goal <= 0.6); {p2['rows'] / p2['seconds']:,.0f} rows/s with 2 workers"
            )
        if not args.skip_shapes:
            shapes = measured(
                root / "shapes",
                2,
                ["dataset.source=shapes", "dataset.shapes.n_samples=null", "preprocess.shard_rows=8192"],
            )
            print(
                f"shapes, full grid: {shapes['rows']:,} images in {shapes['seconds']:.0f} s "
                f"({shapes['rows'] / shapes['seconds']:,.0f} rows/s), peak memory {shapes['peak_mib']:.0f} MiB"
                "   (goal < 4096)"
            )


if __name__ == "__main__":
    main()
