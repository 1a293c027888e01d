"""The default pipeline's result does not drift: row counts per split and `z_mean` values of the session's
library run (the default config, shrunk by `tests.helpers.SMALL`) equal a stored fingerprint.

The fingerprint is read from the latent table's files with pyarrow alone (the on-disk format, not the library's
readers), so it holds across any restructuring of the code that leaves results unchanged.

Tolerance: the values are stored rounded to 6 significant digits; a value matches when it is within
1e-5 relative (or 1e-5 absolute, for values near zero: a column sum can cancel to almost nothing) of the stored
one. Training on the CPU is seeded and reproducible, so an unchanged pipeline reproduces them to float32
precision; any change to the data, the split, the model or the training moves them by far more.

Regenerate (only when a change of results is intended, and say so in the commit):
    python -m pytest tests/test_fingerprint.py --update-fingerprint
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.dataset as ds
import pytest

from tests.helpers import ROOT, SMALL

FINGERPRINT = ROOT / "tests" / "data" / "default_fingerprint.json"
FIRST_ROWS = 3
REL, ABS = 1e-5, 1e-5


def _sig(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")


def fingerprint(table_path) -> dict:
    table = ds.dataset(str(table_path), format="parquet", partitioning="hive").to_table(
        columns=["id", "split", "z_mean"]
    )
    table = table.sort_by("id")
    ids = np.asarray(table.column("id").to_pylist(), dtype=object)
    splits = np.asarray([str(s) for s in table.column("split").to_pylist()], dtype=object)
    z = np.asarray(table.column("z_mean").to_pylist(), dtype=np.float64)
    result: dict = {"overrides": list(SMALL), "rows": len(ids), "latent_dim": int(z.shape[1]), "splits": {}}
    for split in sorted(set(splits)):
        mask = splits == split
        zs = z[mask]
        result["splits"][split] = {
            "rows": int(mask.sum()),
            "first_ids": list(ids[mask][:FIRST_ROWS]),
            "z_mean_sum": [_sig(v) for v in zs.sum(axis=0)],
            "z_mean_abs_sum": [_sig(v) for v in np.abs(zs).sum(axis=0)],
            "z_mean_first_rows": [[_sig(v) for v in row] for row in zs[:FIRST_ROWS]],
        }
    return result


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=ABS)


def _compare(actual, expected, where: str = "") -> list[str]:
    """Every difference between two fingerprints, named by its path (e.g. `splits.val.z_mean_sum[3]`)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or set(actual) != set(expected):
            return [
                f"{where or 'fingerprint'}: keys {sorted(actual) if isinstance(actual, dict) else actual!r} != {sorted(expected)}"
            ]
        return [d for k in expected for d in _compare(actual[k], expected[k], f"{where}.{k}" if where else k)]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: {actual!r} != {expected!r}"]
        return [
            d for i, (a, e) in enumerate(zip(actual, expected, strict=True)) for d in _compare(a, e, f"{where}[{i}]")
        ]
    if isinstance(expected, float):
        return (
            [] if isinstance(actual, float) and _close(actual, expected) else [f"{where}: {actual!r} != {expected!r}"]
        )
    return [] if actual == expected else [f"{where}: {actual!r} != {expected!r}"]


@pytest.mark.integration
def test_default_pipeline_reproduces_the_stored_row_counts_and_z_mean(library_run, request):
    actual = fingerprint(library_run.workspace.root / library_run.encode.table_path)
    if request.config.getoption("--update-fingerprint"):
        FINGERPRINT.write_text(json.dumps(actual, indent=1) + "\n")
        pytest.skip(f"wrote {FINGERPRINT.relative_to(ROOT)}: review and commit it")
    assert FINGERPRINT.is_file(), f"{FINGERPRINT} is missing: run pytest {__file__} --update-fingerprint"
    expected = json.loads(FINGERPRINT.read_text())
    differences = _compare(actual, expected)
    assert not differences, "the default pipeline's result changed:\n" + "\n".join(differences[:20])


@pytest.mark.unit
def test_the_comparison_notices_a_changed_value_a_changed_count_and_a_missing_split():
    stored = {"rows": 10, "splits": {"val": {"rows": 2, "z_mean_sum": [1.23456, -0.5]}}}
    assert _compare(json.loads(json.dumps(stored)), stored) == []
    nudged = {"rows": 10, "splits": {"val": {"rows": 2, "z_mean_sum": [1.23456 * (1 + 3 * REL), -0.5]}}}
    (difference,) = _compare(nudged, stored)
    assert difference.startswith("splits.val.z_mean_sum[0]: ")
    assert _compare({"rows": 11, "splits": stored["splits"]}, stored) == ["rows: 11 != 10"]
    assert _compare({"rows": 10, "splits": {}}, stored)
    rounding = {"rows": 10, "splits": {"val": {"rows": 2, "z_mean_sum": [_sig(1.234561), -0.5]}}}
    assert _compare(rounding, stored) == []
