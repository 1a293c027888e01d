"""t-SNE of latent codes: our report step (`latent.analysis.tsne`: openTSNE, Barnes–Hut below 5,000 points, FFT
interpolation above) against scikit-learn's `TSNE` (Barnes–Hut, its defaults) on the same latent sets, in one run.

The latent sets are real: z_mean of a `shapes` subset (20,000 rows) encoded by a VAE trained for a few epochs
through the library (built once into --cache), and a seeded 2,000-row subset of it. Prints seconds for both, the
time ratio ours/sklearn (goal: <= 0.33 at 20k and <= 1.0 at 2k) and the trustworthiness of both embeddings
(sklearn.manifold.trustworthiness, 10 neighbours; at 20k on a fixed 10,000-point subsample, as the exact measure
needs an n × n distance matrix) — goal: ours within 0.01 of sklearn's.

    python benchmarks/tsne.py [--sizes 2000 20000] [--cache /tmp/latent-bench-tsne] [--latents TABLE_DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_latents(cache: Path, rows: int) -> Path:
    """Train a small VAE on a shapes subset and encode it; returns the latent table (reused when cached)."""
    from latent.config import load_config
    from latent.data import ingest, preprocess
    from latent.encode import encode
    from latent.tables import list_tables
    from latent.tracking import setup_tracking
    from latent.train import train
    from latent.workspace import Workspace

    cfg = load_config(
        ROOT / "conf" / "default.yaml",
        [
            f"workspace={cache}",
            "dataset.source=shapes",
            f"dataset.shapes.n_samples={rows}",
            "model.latent_dim=10",
            "model.hidden_dims=[256, 128]",
            "train.epochs=4",
            "train.batch_size=128",
            "dask.n_workers=2",
        ],
    )
    ws = Workspace.at(cfg.workspace)
    existing = list_tables(ws)
    if existing:
        return existing[0].path
    tracking = setup_tracking(cfg.tracking, ws)
    ing = ingest(cfg.dataset, ws)
    pre = preprocess(ing.raw_path, ing.fingerprint, cfg.preprocess, cfg.dask, ws)
    tr = train(pre.dataset_path, cfg.model, cfg.train, ws, tracking, cfg.tracking.registered_model)
    enc = encode(pre.dataset_path, tr.model_uri, tr.model_version, cfg.encode, ws, tracking, tr.run_id)
    return Path(enc.table_path)


def trust(codes, embedding, sample: int, seed: int = 0) -> float:
    import numpy as np
    from sklearn.manifold import trustworthiness

    idx = np.arange(len(codes))
    if len(idx) > sample:
        idx = np.sort(np.random.default_rng(seed).choice(idx, sample, replace=False))
    return float(trustworthiness(codes[idx], embedding[idx], n_neighbors=10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/latent-bench-tsne"))
    parser.add_argument("--latents", type=Path, default=None, help="an existing latent table instead of --cache")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the shapes latent set built into --cache")
    parser.add_argument("--trust-sample", type=int, default=10_000)
    parser.add_argument("--markdown", action="store_true", help="also print README table rows")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    import numpy as np
    from sklearn.manifold import TSNE

    from latent.analysis import tsne
    from latent.tables import load_latent_arrays

    table = args.latents or build_latents(args.cache, args.rows)
    codes_all = load_latent_arrays(table)["z_mean"].astype(np.float64)
    print(f"latent set: {table} ({len(codes_all)} rows, k={codes_all.shape[1]}); {os.cpu_count()} CPUs")
    rows = []
    for n in args.sizes:
        if n > len(codes_all):
            raise SystemExit(f"--sizes {n}: the latent set has only {len(codes_all)} rows")
        rng = np.random.default_rng(n)
        codes = codes_all[np.sort(rng.choice(len(codes_all), n, replace=False))]
        started = time.perf_counter()
        ours = tsne(codes, perplexity=30.0, seed=0)
        ours_s = time.perf_counter() - started
        started = time.perf_counter()
        theirs = TSNE(n_components=2, perplexity=30.0, init="pca", random_state=0, n_jobs=-1).fit_transform(codes)
        theirs_s = time.perf_counter() - started
        t_ours, t_theirs = trust(codes, ours, args.trust_sample), trust(codes, theirs, args.trust_sample)
        method = "FFT" if n >= 5000 else "BH"
        rows.append((n, method, ours_s, theirs_s, t_ours, t_theirs))
        print(
            f"{n:>7} points  ours (openTSNE {method}) {ours_s:7.1f} s   sklearn TSNE {theirs_s:7.1f} s   "
            f"ratio {ours_s / theirs_s:.2f}   trustworthiness ours {t_ours:.4f} sklearn {t_theirs:.4f} "
            f"(Δ {t_ours - t_theirs:+.4f})",
            flush=True,
        )
    if args.markdown:
        print("\n| points | ours (openTSNE) | scikit-learn TSNE | ratio | trustworthiness ours / sklearn |")
        print("|---:|---:|---:|---:|---:|")
        for n, method, a, b, ta, tb in rows:
            print(f"| {n:,} | {a:.1f} s ({method}) | {b:.1f} s | {a / b:.2f} | {ta:.4f} / {tb:.4f} |")


if __name__ == "__main__":
    main()
