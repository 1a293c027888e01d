"""The `tabular` source: CSV or Parquet files, numeric feature columns and an optional label column."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from latent.data.sources.base import (
    Plan,
    Rows,
    Source,
    file_fingerprint,
    file_units,
    labels_array,
    matching_files,
    register_source,
)
from latent.errors import DataError

_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def _refuse_numbers_mixed_with_text(table: pa.Table, column: str, path: Path) -> None:
    """A text column whose other values are numbers is a numeric column with a typo: refuse it rather than leave a
    feature out without a word (a column of text only, such as names, is simply not a feature)."""
    import pyarrow.compute as pc

    values = table.column(column)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return
    numeric = pc.fill_null(pc.match_substring_regex(values, _NUMBER), True).to_numpy(zero_copy_only=False)
    if numeric.any() and not numeric.all():
        row = int(np.flatnonzero(~numeric)[0])
        raise DataError(
            f"{path}: column {column!r} holds numbers and text (row {row}: {values[row].as_py()!r} is not a number); "
            "fix the value, or list the feature columns in dataset.tabular.features"
        )


@register_source
class TabularSource(Source):
    name = "tabular"

    def matching_files(self) -> list[Path]:
        files = matching_files(self.cfg.path or "", "CSV or Parquet files")
        for f in files:
            if f.suffix.lower() not in (".csv", ".parquet", ".pq"):
                raise DataError(f"{f}: expected a .csv or .parquet file")
        return files

    def fingerprint(self) -> str:
        return file_fingerprint(self.matching_files(), self.cfg.tabular.model_dump())

    def _frame(self, path: Path):
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path) if path.suffix.lower() != ".csv" else pacsv.read_csv(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{path}: cannot be read ({' '.join(str(exc).split())[:200]})") from None

    def _columns(self, table: pa.Table, path: Path) -> list[str]:
        t = self.cfg.tabular
        if t.label and t.label not in table.column_names:
            raise DataError(f"{path}: no label column {t.label!r}")
        if t.features is None:
            for c in table.column_names:
                if c != t.label:
                    _refuse_numbers_mixed_with_text(table, c, path)
            return [
                c
                for c in table.column_names
                if (c != t.label and pa.types.is_floating(table.schema.field(c).type))
                or (c != t.label and pa.types.is_integer(table.schema.field(c).type))
            ]
        for c in t.features:
            if c not in table.column_names:
                raise DataError(f"{path}: no feature column {c!r}")
            if not (
                pa.types.is_floating(table.schema.field(c).type)
                or pa.types.is_integer(table.schema.field(c).type)
                or pa.types.is_null(table.schema.field(c).type)
            ):
                raise DataError(f"{path}: feature column {c!r} is not numeric ({table.schema.field(c).type})")
        return list(t.features)

    def units(self) -> dict[str, list[int]]:
        return file_units(self.matching_files())

    def partition_units(self, partition: list) -> list[str]:
        return [str(Path(partition[0]).resolve())]

    def plan_units(self, raw_dir: Path, shard_rows: int, units: list[str], previous: Plan) -> Plan:
        plan = self._plan_files([Path(u) for u in units])
        if plan.info["features"] != previous.info["features"]:
            raise DataError(
                f"{units[0]}: feature columns {plan.info['features']} differ from earlier files' "
                f"{previous.info['features']}"
            )
        return plan

    def plan(self, raw_dir: Path, shard_rows: int) -> Plan:
        return self._plan_files(self.matching_files())

    def _plan_files(self, files: list[Path]) -> Plan:
        columns, total = None, 0
        for f in files:
            table = self._frame(f)
            if table.num_rows == 0:
                raise DataError(f"{f}: no rows (only a header)" if table.num_columns else f"{f}: no rows")
            cols = self._columns(table, f)
            if not cols:
                raise DataError(f"{f}: no numeric feature columns")
            if columns is not None and cols != columns:
                raise DataError(f"{f}: feature columns {cols} differ from earlier files' {columns}")
            columns = cols
            total += table.num_rows
        return Plan([[str(f)] for f in files], (0, 1, len(columns)), 1.0, total, {"features": columns})

    def read(self, partition: list) -> Rows:
        path = Path(partition[0])
        table = self._frame(path)
        features = self.plan_info["features"]
        x = np.column_stack([table.column(c).cast(pa.float64()).to_numpy(zero_copy_only=False) for c in features])
        x = x.astype(np.float32)
        if np.isinf(x).any():
            row, col = np.argwhere(np.isinf(x))[0]
            raise DataError(f"{path}: infinite value in column {features[col]!r} at row {row}")
        if self.cfg.tabular.missing == "error" and np.isnan(x).any():
            row, col = np.argwhere(np.isnan(x))[0]
            raise DataError(
                f"{path}: missing value in column {features[col]!r} at row {row} "
                "(set dataset.tabular.missing: median to fill it)"
            )
        label = self.cfg.tabular.label
        y = None
        if label:
            column = table.column(label)
            if not pa.types.is_integer(column.type):
                raise DataError(f"{path}: label column {label!r} must hold integers, got {column.type}")
            y = column.to_numpy(zero_copy_only=False)
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
        return Rows([f"{path.stem}-{digest}-{i:08d}" for i in range(len(x))], x, labels_array(y, len(x)))
