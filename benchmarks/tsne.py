"""t-SNE of latent codes: our report step (`latent.analysis.tsne`: openTSNE, Barnes–Hut below 18,000 points, FFT
interpolation above, exact neighbours up to 100,000 rows) against scikit-learn's `TSNE` (Barnes–Hut, its defaults) on the same latent sets, in one run.

The latent sets are real: z_mean of a `shapes` subset (20,000 rows) encoded by a VAE trained for a few epochs
through the library (built once into --cache), and a seeded 2,000-row subset of it. Prints seconds for both, the
time ratio ours/sklearn (goal: <= 0.33 at 20k and <= 1.0 at 2k) and the trustworthiness of both embeddings
(sklearn.manifold.trustworthiness, 10 neighbours; at 20k on a fixed 10,000-point subsample, as the exact measure
needs an n × n distance matrix) — goal: ours within 0.01 of sklearn's. As trustworthiness only looks at the 10
nearest neighbours, it also prints the exact KL divergence of both embeddings under one shared P (openTSNE's
perplexity affinities on exact neighbours; Q normalised over all n² pairs, no approximation): how converged each
map is, on the objective both minimise.

    python benchmarks/tsne.py [--sizes 2000 10000 20000] [--cache /tmp/latent-bench-tsne] [--latents TABLE_DIR]
                              [--iterations 500] [--crossover] [--markdown]

--fit-rows L also runs ours as the report does on a table larger than `report.tsne_max_rows` = L: fitted on L rows,
the rest placed beside their nearest fitted rows (time, trustworthiness and exact KL of the whole map).
--large N times that on N synthetic clustered 10-d rows (20 clusters), fitted on 50,000 against a full fit, with
the label accuracy of a 10-NN classifier on the map for the placed rows. `--sizes` with no value skips the
comparison with scikit-learn.

--iterations sets ours as `report.tsne_iterations` does (iterations after the 250 early-exaggeration ones; default
openTSNE's 500): fewer is faster and less converged, which the exact KL column shows.

--crossover also times openTSNE's two gradient methods (Barnes–Hut, FFT) at each size: the evidence for the size
at which `latent.analysis.dr.tsne_plan` switches.
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


def exact_kl(codes, embedding, perplexity: float = 30.0) -> float:
    """KL(P || Q) of a 2-D embedding, P from openTSNE's perplexity affinities (exact neighbours), Q exact."""
    import numpy as np
    from openTSNE.affinity import PerplexityBasedNN

    p = PerplexityBasedNN(codes, perplexity=perplexity, method="exact", n_jobs=-1, random_state=0).P.tocoo()
    p_ij = p.data / p.data.sum()
    y = np.asarray(embedding, dtype=np.float64)
    sq = (y**2).sum(1)
    z = 0.0
    for start in range(0, len(y), 2000):  # sum of the Student-t kernel over all pairs i != j, in row blocks
        d2 = np.maximum(sq[start : start + 2000, None] + sq[None, :] - 2.0 * y[start : start + 2000] @ y.T, 0.0)
        z += float((1.0 / (1.0 + d2)).sum()) - len(d2)
    d2_ij = ((y[p.row] - y[p.col]) ** 2).sum(1)
    return float((p_ij * np.log(p_ij)).sum() + (p_ij * np.log1p(d2_ij)).sum() + np.log(z))


def large(n: int, iterations: int, limit: int = 50_000) -> None:
    """A synthetic clustered set of n rows: the report's capped t-SNE (fitted on `limit` rows) vs a full fit."""
    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier

    from latent.analysis.dr import fit_rows, tsne

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 20, n)
    codes = rng.normal(scale=6.0, size=(20, 10))[labels] + rng.normal(size=(n, 10))
    rows = fit_rows(n, limit, 0)
    started = time.perf_counter()
    capped = tsne(codes, perplexity=30.0, seed=0, rows=rows, n_iter=iterations)
    capped_s = time.perf_counter() - started
    placed = np.setdiff1d(np.arange(n), rows)
    accuracy = KNeighborsClassifier(10).fit(capped[rows], labels[rows]).score(capped[placed], labels[placed])
    started = time.perf_counter()
    tsne(codes, perplexity=30.0, seed=0, n_iter=iterations)
    full_s = time.perf_counter() - started
    print(
        f"{n:>7} synthetic rows  ours fitted on {min(n, limit):,} (rest placed) {capped_s:.1f} s   full fit "
        f"{full_s:.1f} s   ratio {capped_s / full_s:.2f}   placed rows' label 10-NN accuracy on the map {accuracy:.4f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[2000, 10000, 20000])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/latent-bench-tsne"))
    parser.add_argument("--latents", type=Path, default=None, help="an existing latent table instead of --cache")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the shapes latent set built into --cache")
    parser.add_argument("--trust-sample", type=int, default=10_000)
    parser.add_argument("--markdown", action="store_true", help="also print the table rows of docs/performance.md")
    parser.add_argument("--crossover", action="store_true", help="also time openTSNE BH and FFT at each size")
    parser.add_argument("--iterations", type=int, default=500, help="ours: iterations after early exaggeration")
    parser.add_argument("--fit-rows", type=int, default=None, help="also ours fitted on this many rows, rest placed")
    parser.add_argument("--large", type=int, default=None, help="rows of a synthetic set: capped fit vs full fit")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    import numpy as np
    from sklearn.manifold import TSNE

    from latent.analysis import tsne
    from latent.analysis.dr import fit_rows, tsne_plan
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
        ours = tsne(codes, perplexity=30.0, seed=0, n_iter=args.iterations)
        ours_s = time.perf_counter() - started
        started = time.perf_counter()
        theirs = TSNE(n_components=2, perplexity=30.0, init="pca", random_state=0, n_jobs=-1).fit_transform(codes)
        theirs_s = time.perf_counter() - started
        t_ours, t_theirs = trust(codes, ours, args.trust_sample), trust(codes, theirs, args.trust_sample)
        kl_ours, kl_theirs = exact_kl(codes, ours), exact_kl(codes, theirs)
        method, neighbors = tsne_plan(n)
        method = f"{method.upper()}, {neighbors} kNN" + (f", {args.iterations} it." if args.iterations != 500 else "")
        rows.append((n, method, ours_s, theirs_s, t_ours, t_theirs, kl_ours, kl_theirs))
        print(
            f"{n:>7} points  ours (openTSNE {method}) {ours_s:7.1f} s   sklearn TSNE {theirs_s:7.1f} s   "
            f"ratio {ours_s / theirs_s:.2f}   trustworthiness ours {t_ours:.4f} sklearn {t_theirs:.4f} "
            f"(Δ {t_ours - t_theirs:+.4f})   exact KL ours {kl_ours:.3f} sklearn {kl_theirs:.3f}",
            flush=True,
        )
        if args.fit_rows is not None and n > args.fit_rows:
            started = time.perf_counter()
            placed = tsne(codes, perplexity=30.0, seed=0, rows=fit_rows(n, args.fit_rows, 0), n_iter=args.iterations)
            seconds = time.perf_counter() - started
            print(
                f"{n:>7} points  ours fitted on {args.fit_rows:,}, {n - args.fit_rows:,} placed: {seconds:.1f} s   "
                f"trustworthiness {trust(codes, placed, args.trust_sample):.4f}   exact KL {exact_kl(codes, placed):.3f}",
                flush=True,
            )
        if args.crossover:
            from openTSNE import TSNE as OpenTSNE

            seconds = {}
            for gradient in ("bh", "fft"):
                started = time.perf_counter()
                OpenTSNE(
                    perplexity=30.0, negative_gradient_method=gradient, neighbors=neighbors, random_state=0, n_jobs=-1
                ).fit(codes)
                seconds[gradient] = time.perf_counter() - started
            print(f"{n:>7} points  openTSNE BH {seconds['bh']:.1f} s   FFT {seconds['fft']:.1f} s", flush=True)
    if args.large:
        large(args.large, args.iterations)
    if args.markdown:
        print(
            "\n| points | ours (openTSNE) | scikit-learn TSNE | ratio | trustworthiness ours / sklearn | KL ours / sklearn |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        for n, method, a, b, ta, tb, ka, kb in rows:
            print(
                f"| {n:,} | {a:.1f} s ({method}) | {b:.1f} s | {a / b:.2f} | {ta:.4f} / {tb:.4f} | {ka:.3f} / {kb:.3f} |"
            )


if __name__ == "__main__":
    main()
