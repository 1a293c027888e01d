"""Disentanglement of a VAE (β = 1) and a β-TCVAE trained with the same budget on the shapes (dSprites) grid.

Both models are trained through the library (ingest -> preprocess -> train -> encode, MLflow off, in a temporary
workspace) from conf/shapes-vae.yaml and conf/shapes-betatcvae.yaml: the same 20,000-image subset, MLP
4096-256-128-10, 30 epochs of batch 128. Then, for each model, on its latent table (`z_mean` against the `*_idx`
factor columns, all splits, rows split with a seed):

- MIG on 10,000 rows (disentanglement_lib's num_train);
- DCI (disentanglement / completeness / informativeness) on 2,000 training and 1,000 test rows (theirs: 10,000 /
  5,000; its gradient-boosted trees, 113 per boosting stage for the 3 + 6 + 40 + 32 + 32 classes, cost most);
- the FactorVAE score with fresh renders of the grid (`ShapesGroundTruth`), batches of 64, 1,000 training and 500
  evaluation votes, 5,000 samples for the global variances (theirs: 10,000 / 5,000 / 10,000).

Budget: written for at most 10 minutes on 2 otherwise idle CPU cores with the defaults (the total is printed at the
end). `--epochs`, `--n-samples`, `--dci-rows` and `--factorvae-votes` shrink or grow it; on a machine shared with other jobs,
`--threads 1` avoids oversubscribing the cores (two torch threads competing with other processes ran training 4.5×
slower than one thread, measured).

For comparison, the script prints the ranges that Locatello et al. (2019, "Challenging common assumptions in the
unsupervised learning of disentangled representations") show for dSprites in their per-method violin plots of each
score (β-VAE with β from 1 to 16, β-TCVAE with β from 1 to 10; 50 runs per setting of conv nets trained for 300k
steps). They are rough readings of a figure, not numbers the paper tabulates (check the figure before quoting
them), and the paper's models and budget are far larger than ours.

    python benchmarks/disentangle.py [--epochs 30] [--n-samples 20000] [--dci-rows 2000] [--factorvae-votes 1000]
                                     [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESETS = {"VAE (β=1)": "shapes-vae.yaml", "β-TCVAE (β=6)": "shapes-betatcvae.yaml"}
# Rough readings of Locatello et al. (2019), dSprites violin plots: (low, high) of the bulk of each method's runs.
PUBLISHED = {
    "β-VAE (β 1-16)": {"MIG": (0.05, 0.35), "DCI D": (0.10, 0.50), "FactorVAE": (0.55, 0.85)},
    "β-TCVAE (β 1-10)": {"MIG": (0.05, 0.35), "DCI D": (0.15, 0.50), "FactorVAE": (0.55, 0.85)},
}
COLUMNS = [
    ("mig", "MIG"),
    ("dci_disentanglement", "DCI D"),
    ("dci_completeness", "DCI C"),
    ("dci_informativeness_test", "DCI I (test acc)"),
    ("factorvae_eval_accuracy", "FactorVAE"),
]


def run_model(preset: str, workspace: Path, overrides: list[str], dci_rows: int, votes: int) -> dict[str, float]:
    from latent.analysis.metrics import disentanglement_scores, factorvae_score
    from latent.config import load_config
    from latent.data import ingest, preprocess
    from latent.encode import encode
    from latent.explore.disentangle import ShapesGroundTruth, load_codes_and_factors, model_representation
    from latent.train import train
    from latent.workspace import Workspace

    cfg = load_config(ROOT / "conf" / preset, [f"workspace={workspace}", *overrides])
    ws = Workspace.at(cfg.workspace)
    times: dict[str, float] = {}
    t = time.perf_counter()
    ing = ingest(cfg.dataset, ws)
    pre = preprocess(ing.raw_path, ing.fingerprint, cfg.preprocess, cfg.dask, ws)
    times["data_s"] = time.perf_counter() - t
    t = time.perf_counter()
    tr = train(pre.dataset_path, cfg.model, cfg.train, ws, None)
    times["train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    enc = encode(pre.dataset_path, tr.model_uri, tr.model_version, cfg.encode, ws, None)
    times["encode_s"] = time.perf_counter() - t
    t = time.perf_counter()
    table = Path(enc.table_path)
    table = table if table.is_absolute() else ws.root / table
    codes, factors, _ = load_codes_and_factors(table)
    scores = disentanglement_scores(codes, factors, seed=0, metrics=["mig"])
    times["mig_s"] = time.perf_counter() - t
    t = time.perf_counter()
    scores.update(
        disentanglement_scores(codes, factors, seed=0, num_train=dci_rows, num_test=dci_rows // 2, metrics=["dci"])
    )
    times["dci_s"] = time.perf_counter() - t
    t = time.perf_counter()
    fv = factorvae_score(
        ShapesGroundTruth.from_dataset(pre.dataset_path),
        model_representation(tr.model_uri),
        random_state=0,
        num_train=votes,
        num_eval=votes // 2,
        num_variance_estimate=5000,
    )
    times["factorvae_s"] = time.perf_counter() - t
    active = int((codes.std(0) >= 0.05).sum())
    return {**scores, **fv, **times, "val_loss": tr.best_val_loss, "rows": len(codes), "active_latents": active}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--n-samples", type=int, default=20000)
    parser.add_argument("--dci-rows", type=int, default=2000)
    parser.add_argument("--factorvae-votes", type=int, default=1000)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: one per core; 1 on a machine shared with other jobs)",
    )
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    overrides = [f"train.epochs={args.epochs}", f"dataset.shapes.n_samples={args.n_samples}", *args.sets]

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="latent-disentangle-") as tmp:
        for label, preset in PRESETS.items():
            print(f"{label}: training ({preset}, {' '.join(overrides)}) ...", flush=True)
            results[label] = run_model(preset, Path(tmp) / "ws", overrides, args.dci_rows, args.factorvae_votes)
            r = results[label]
            print(
                f"  data {r['data_s']:.0f} s, train {r['train_s']:.0f} s, encode {r['encode_s']:.0f} s, "
                f"MIG {r['mig_s']:.0f} s, DCI {r['dci_s']:.0f} s, FactorVAE {r['factorvae_s']:.0f} s, "
                f"val objective {r['val_loss']:.1f}, latents with std ≥ 0.05: {r['active_latents']}/10",
                flush=True,
            )
    total = time.perf_counter() - started

    print()
    print(
        f"shapes subset {args.n_samples:,} images, {args.epochs} epochs, MLP 4096-256-128-10; MIG on "
        f"{min(10000, -(-2 * args.n_samples // 3)):,} rows; DCI on {args.dci_rows:,} / {args.dci_rows // 2:,} rows; "
        f"FactorVAE {args.factorvae_votes:,} / {args.factorvae_votes // 2:,} votes"
    )
    header = "| model | " + " | ".join(name for _, name in COLUMNS) + " |"
    print(header)
    print("|" + "---|" * (len(COLUMNS) + 1))
    for label, r in results.items():
        print(f"| {label} | " + " | ".join(f"{r[key]:.3f}" for key, _ in COLUMNS) + " |")
    print()
    print("Locatello et al. (2019), dSprites, rough readings of the violin plots (bulk of each method's runs):")
    for label, ranges in PUBLISHED.items():
        cells = ", ".join(f"{k} {lo:.2f}-{hi:.2f}" for k, (lo, hi) in ranges.items())
        print(f"  {label}: {cells}")
    print()
    print(f"total wall time {total:.0f} s ({os.cpu_count()} CPU cores, torch on {torch.get_num_threads()} threads)")


if __name__ == "__main__":  # preprocessing starts a Dask LocalCluster, whose worker processes re-import this file
    main()
