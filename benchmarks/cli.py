"""How fast the analyst commands answer, against a bare DuckDB one-liner doing the same work.

Prints, measured in one run, for `latent tables`, `latent query "SELECT count(*) FROM latents"` and
`latent neighbors ID -k 5`: the median wall time of the command (a fresh process, as a user runs it) divided by the
median wall time of `python -c "import duckdb; ..."` reading the same Parquet files.    goal <= 3

    python benchmarks/cli.py [--workspace DIR] [--repeats 7]

Without --workspace it first builds the default pipeline's workspace (`latent run`, 2 epochs) in a temporary
directory.
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

LATENT = Path(sys.executable).with_name("latent")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env.update(PREFECT_HOME=str(home / ".prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false", COLUMNS="200")
    return env


def build_workspace(directory: Path) -> Path:
    workspace = directory / "workspace"
    cmd = [str(LATENT), "run", "--set", f"workspace={workspace}", "--set", "train.epochs=2"]
    print(f"building the default workspace: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, cwd=directory, env=_env(directory), check=True, capture_output=True)
    return workspace


def median_seconds(cmd: list[str], cwd: Path, env: dict[str, str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, help="an existing workspace with a latent table")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        workspace = args.workspace.resolve() if args.workspace else build_workspace(cwd)
        env = _env(cwd)
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from latent.query import view_names
        from latent.tables import list_tables
        from latent.workspace import Workspace

        newest = next(iter(view_names(list_tables(Workspace.at(workspace))).values()))
        files = f"{newest.path}/*/*.parquet"
        row_id = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import duckdb; print(duckdb.sql(\"SELECT min(id) FROM '{files}'\").fetchall()[0][0])",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        k = newest.latent_dim
        sets = ["--set", f"workspace={workspace}"]
        cases = {
            "latent tables": (
                [str(LATENT), "tables", *sets],
                f"import duckdb; print(duckdb.sql(\"SELECT * FROM '{workspace / 'catalog.parquet'}'\").fetchall())",
            ),
            'latent query "SELECT count(*) FROM latents"': (
                [str(LATENT), "query", "SELECT count(*) FROM latents", *sets],
                f"import duckdb; print(duckdb.sql(\"SELECT count(*) FROM '{files}'\").fetchall())",
            ),
            f"latent neighbors {row_id} -k 5": (
                [str(LATENT), "neighbors", row_id, "-k", "5", *sets],
                f"import duckdb; print(duckdb.sql(\"WITH t AS (SELECT id, z_mean::FLOAT[{k}] AS v FROM '{files}'), "
                f"q AS (SELECT v FROM t WHERE id = '{row_id}') SELECT t.id, array_cosine_distance(t.v, q.v) AS d "
                f"FROM t, q WHERE t.id <> '{row_id}' ORDER BY d, t.id LIMIT 5\").fetchall())",
            ),
        }
        print(
            f"{'command':<52} {'latent s':>9} {'duckdb -c s':>12} {'ratio':>6}  (goal <= 3; median of {args.repeats})"
        )
        for name, (command, one_liner) in cases.items():
            ours = median_seconds(command, cwd, env, args.repeats)
            bare = median_seconds([sys.executable, "-c", one_liner], cwd, env, args.repeats)
            print(f"{name:<52} {ours:>9.3f} {bare:>12.3f} {ours / bare:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
