"""Molecules, both presets through `latent run` on the built-in 2,000 molecules, in one run:

- SELFIES (conf/molecules-selfies.yaml): validity (goal 1.0), uniqueness (goal ≥ 0.9) and novelty of 64 molecules
  sampled from the prior (tokens drawn at temperature 1), uniqueness of the greedy decoding of the same codes;
  reconstruction accuracy on the test split, exact and per SELFIES token;
- both: R² of ridge probes for RDKit logP, QED and TPSA from z_mean against the same probe on the raw 1024-bit Morgan
  fingerprints (the baseline, measured in the same run); mean Tanimoto of each molecule's 5 nearest latent
  neighbours against random pairs (the baseline).

    python benchmarks/molecules.py [--workspace DIR] [--threads 1] [--set key=value ...]

--threads sets OMP_NUM_THREADS for the runs: on a shared 2-core machine one intra-op thread is ~8x faster for the
GRUs than two (two threads spin against each other and the machine's other work).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.faults import run_preset  # noqa: E402

PRESETS = ("molecules-fingerprint", "molecules-selfies")
FAST = ["report.disentanglement=false", "report.tsne_iterations=300"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="latent-molecules-"))
    workspace.mkdir(parents=True, exist_ok=True)
    results = {}
    for preset in PRESETS:
        results[preset] = run_preset(preset, workspace, args.threads, [*FAST, *args.sets])
        print(f"{preset}: latent run {results[preset][1]:.0f} s", flush=True)
    selfies = results["molecules-selfies"][0]
    print("\nSELFIES VAE, 64 prior samples (sampled at temperature 1):")
    for key, goal in (("validity", "goal 1.0"), ("uniqueness", "goal >= 0.9"), ("novelty", "")):
        print(f"  {key:<24} {selfies[f'molecules_{key}']:.3f}  {goal}")
    print(
        f"  {'uniqueness, greedy':<24} {selfies['molecules_uniqueness_greedy']:.3f}  (most probable tokens, same codes)"
    )
    print(f"  {'reconstruction accuracy':<24} {selfies['molecules_reconstruction_accuracy']:.3f}  (test split, exact)")
    print(f"  {'  per SELFIES token':<24} {selfies['molecules_reconstruction_token_accuracy']:.3f}")
    print(
        "\nprobe R² on the val+test rows (ridge):  latent (fingerprint VAE) | latent (SELFIES VAE) | raw fingerprints"
    )
    fingerprint = results["molecules-fingerprint"][0]
    for prop in ("logp", "qed", "tpsa"):
        print(
            f"  {prop:<6} {fingerprint[f'molecules_probe_r2_{prop}_latent']:8.3f} "
            f"{selfies[f'molecules_probe_r2_{prop}_latent']:22.3f} "
            f"{fingerprint[f'molecules_probe_r2_{prop}_fingerprint']:20.3f}"
        )
    print("\nmean Tanimoto, 5 latent neighbours vs random pairs (ratio):")
    for preset, (metrics, _) in results.items():
        n, r = metrics["molecules_neighbour_tanimoto"], metrics["molecules_random_tanimoto"]
        print(f"  {preset:<22} {n:.3f} vs {r:.3f}  ({n / r:.2f}x)")
    print(f"\nworkspace: {workspace}  (OMP_NUM_THREADS={args.threads})")


if __name__ == "__main__":
    main()
