"""The built-in transfer demonstration, measured: the digits model moved to shifted digits.

Runs `latent run` (the default pipeline: the source model) and then `latent transfer` with
conf/transfer-digits.yaml for each documented shift (invert, noise, rotate), in one fresh workspace, and prints
probe accuracy against the number of target labels for frozen / adapted / scratch / raw inputs, and the domain
shift (MMD², Fréchet) before and after adaptation.

    python benchmarks/transfer.py [--shifts invert noise rotate] [--set transfer.adapt_epochs=30 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LATENT = str(Path(sys.executable).with_name("latent"))


def latent(*args: str, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    proc = subprocess.run([LATENT, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"latent {args[0]} failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shifts", nargs="+", default=["invert", "noise", "rotate"])
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="latent-bench-transfer-") as tmp:
        workspace = Path(tmp) / "ws"
        sets = [a for s in [f"workspace={workspace}", *args.sets] for a in ("--set", s)]
        latent("run", "--config", str(ROOT / "conf" / "default.yaml"), *sets, cwd=ROOT)
        for shift in args.shifts:
            latent(
                "transfer",
                "--config",
                str(ROOT / "conf" / "transfer-digits.yaml"),
                *sets,
                "--set",
                f"transfer.shift.kind={shift}",
                cwd=ROOT,
            )
            report = max((workspace / "reports").glob("*/transfer/transfer.json"), key=lambda p: p.stat().st_mtime)
            result = json.loads(report.read_text())
            accuracy, metrics = result["accuracy"], result["metrics"]
            budgets = list(next(iter(accuracy.values())))
            print(f"\nshift: {shift}  (probe accuracy on the target test split; logistic regression on z_mean)")
            print(f"{'approach':<12}" + "".join(f"{b + ' labels':>13}" for b in budgets))
            for approach, scores in accuracy.items():
                print(f"{approach:<12}" + "".join(f"{scores[b]:>13.3f}" for b in budgets))
            print(
                f"MMD² source vs target: before {metrics['mmd_before']:.4f}, after adaptation "
                f"{metrics['mmd_after']:.4f}; Fréchet: before {metrics['frechet_before']:.2f}, after "
                f"{metrics['frechet_after']:.2f}"
            )


if __name__ == "__main__":
    main()
