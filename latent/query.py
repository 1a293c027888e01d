"""Read-only SQL over the workspace's latent tables with DuckDB, and nearest-neighbour search in latent space.

Each table is a view named `t_<dataset-version 8>_<model-version 8>`; `latents` is the newest table and `catalog`
the catalog. Vectors are `FLOAT[k]` arrays, so DuckDB's array functions (`array_cosine_similarity`,
`array_distance`, ...) apply directly. The connection can read the workspace and nothing else, and only SELECT
(or EXPLAIN) statements run.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latent.errors import LatentError
from latent.tables import CATALOG, LatentTable, list_tables, read_table_info, refresh_catalog
from latent.workspace import Workspace, atomic_write_bytes

if TYPE_CHECKING:  # pyarrow only where an Arrow result is asked for: the CLI's previews import DuckDB alone
    import pyarrow as pa

READ_ONLY_STATEMENTS = ("SELECT", "EXPLAIN")
_SQL_GAP = r"(?:\s|/\*.*?\*/|--[^\n]*(?:\n|$))*"  # whitespace and comments
_EXPLAIN_PREFIX = re.compile(
    rf"^{_SQL_GAP}EXPLAIN\b{_SQL_GAP}(?:ANALY[SZ]E\b{_SQL_GAP})?(?:\([^()]*\){_SQL_GAP})?", re.I | re.S
)


def view_name(table: LatentTable) -> str:
    dataset = table.info["dataset"]["version"][:8]
    model = str(table.info["model"]["version"]).removeprefix("m-")[:8]
    return re.sub(r"\W", "_", f"t_{dataset}_{model}")


def view_names(tables: list[LatentTable]) -> dict[str, LatentTable]:
    """A distinct SQL view name per table, in the given order (newest first keeps the short names)."""
    names: dict[str, LatentTable] = {}
    for table in tables:
        base = name = view_name(table)
        n = 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names[name] = table
    return names


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _view_sql(table: LatentTable) -> str:
    k = table.latent_dim
    source = f"read_parquet({_literal(str(table.path) + '/*/*.parquet')}, hive_partitioning = true)"
    return f"SELECT * REPLACE (z_mean::FLOAT[{k}] AS z_mean, z_logvar::FLOAT[{k}] AS z_logvar) FROM {source}"


def connect(workspace: Workspace) -> Any:
    """An in-memory DuckDB connection with a view per table, sandboxed to read the workspace only."""
    import duckdb

    con = duckdb.connect(":memory:")
    tables = list_tables(workspace)
    names = view_names(tables)
    for name, table in names.items():
        con.execute(f"CREATE VIEW {name} AS {_view_sql(table)}")
    if tables:
        con.execute(f"CREATE VIEW latents AS SELECT * FROM {next(iter(names))}")
        _ensure_catalog(con, workspace, len(tables))
        con.execute(f"CREATE VIEW catalog AS SELECT * FROM read_parquet({_literal(str(workspace.root / CATALOG))})")
    root = _literal(str(workspace.root))
    con.execute(f"SET temp_directory = {_literal(str(workspace.root / '.duckdb-tmp'))}")
    con.execute(f"SET allowed_directories = [{root}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _ensure_catalog(con: Any, workspace: Workspace, tables: int) -> None:
    """Rebuild `catalog.parquet` if a table was published without it (an interrupted run) or it is damaged;
    the check reads the file's row count through DuckDB, so a current catalog costs no pyarrow import."""
    import duckdb

    path = workspace.root / CATALOG
    try:
        current = path.is_file() and con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone() == (
            tables,
        )
    except duckdb.Error:
        current = False
    if not current:
        refresh_catalog(workspace)


@dataclass(frozen=True)
class Rows:
    """The first rows of a result as Python values, with the result's column names and full row count: what the
    command line shows, fetched without pyarrow."""

    column_names: list[str]
    rows: list[tuple]
    num_rows: int

    def to_pylist(self) -> list[dict[str, Any]]:
        return [dict(zip(self.column_names, row, strict=True)) for row in self.rows]


def _arrow(con: Any, sql: str, params: list | None = None) -> pa.Table:
    import pyarrow as pa

    relation = con.sql(sql, params=params)
    if relation is None:  # not a query
        return pa.table({})
    to_table = getattr(relation, "to_arrow_table", None) or relation.arrow
    result = to_table()
    return result.read_all() if isinstance(result, pa.RecordBatchReader) else result


def _preview(limit: int) -> Callable[..., Rows]:
    """A fetch that keeps the first `limit` rows and counts the rest, in chunks (memory bounded by the chunk)."""

    def fetch(con: Any, sql: str, params: list | None = None) -> Rows:
        cursor = con.execute(sql, params)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchmany(limit) if limit > 0 and columns else []
        total = len(rows)
        while columns and (chunk := cursor.fetchmany(10_000)):
            total += len(chunk)
        return Rows(columns, rows, total)

    return fetch


def _check_read_only(con: Any, sql: str) -> None:
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise LatentError(f"query: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise LatentError(f"query: give exactly one statement, got {len(statements)}")
    kind = str(statements[0].type).rsplit(".", 1)[-1]
    if kind not in READ_ONLY_STATEMENTS:
        raise LatentError(f"query: latent query is read-only; {kind} statements are refused (use SELECT)")
    if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs its statement (a COPY would write): check that one too
        inner = _EXPLAIN_PREFIX.sub("", statements[0].query, count=1)
        if inner == statements[0].query:
            raise LatentError("query: this form of EXPLAIN is not supported; use EXPLAIN [ANALYZE] SELECT ...")
        _check_read_only(con, inner)


def run_query(workspace: Workspace, sql: str) -> pa.Table:
    """Run one read-only statement over the workspace's tables and return the result as an Arrow table."""
    return _query(workspace, sql, _arrow)


def preview_query(workspace: Workspace, sql: str, limit: int) -> Rows:
    """`run_query`, keeping the first `limit` rows as Python values and the row count (the CLI's view)."""
    return _query(workspace, sql, _preview(limit))


def _query(workspace: Workspace, sql: str, fetch: Callable[..., Any]) -> Any:
    import duckdb

    con = connect(workspace)
    try:
        _check_read_only(con, sql)
        try:
            return fetch(con, sql)
        except duckdb.Error as exc:
            raise LatentError(f"query: {_first_line(exc)}") from None
    finally:
        con.close()


def neighbors(
    workspace: Workspace, row_id: str, k: int = 10, metric: str = "cosine", table: str | Path | None = None
) -> pa.Table:
    """The k rows nearest to row_id in z_mean (cosine distance or Euclidean), nearest first, without row_id."""
    return _neighbors(workspace, row_id, k, metric, table, _arrow)


def preview_neighbors(
    workspace: Workspace, row_id: str, k: int = 10, metric: str = "cosine", table: str | Path | None = None
) -> Rows:
    """`neighbors` as Python values (the CLI's view, without pyarrow)."""
    return _neighbors(workspace, row_id, k, metric, table, _preview(k))


def _neighbors(
    workspace: Workspace, row_id: str, k: int, metric: str, table: str | Path | None, fetch: Callable[..., Any]
) -> Any:
    import duckdb

    if metric not in ("cosine", "l2"):
        raise LatentError(f"--metric: expected cosine or l2, got {metric!r}")
    if k <= 0:
        raise LatentError(f"--top-k: expected a positive integer, got {k}")
    con = connect(workspace)
    try:
        if table is not None:
            info = read_table_info(_in_workspace(workspace, table))
            con_view = f"({_view_sql(info)})"
        else:
            if not list_tables(workspace):
                raise LatentError(f"{workspace.root}: no latent tables yet; run `latent run` first")
            con_view = "latents"
        distance = "array_cosine_distance" if metric == "cosine" else "array_distance"
        try:  # a damaged table file is named in DuckDB's message
            # molecules and documents: the neighbours come back as what they are (their SMILES, their text's start)
            columns = {row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {con_view}").fetchall()}
            shown = "".join(f", t.{c}" for c in ("smiles", "text_preview") if c in columns)
            sql = f"""
                WITH t AS (SELECT * FROM {con_view}), q AS (SELECT z_mean AS v FROM t WHERE id = ?)
                SELECT t.id, t.split, t.label{shown}, {distance}(t.z_mean, q.v) AS distance
                FROM t, q WHERE t.id <> ?
                ORDER BY distance, t.id LIMIT ?
            """
            found = con.sql(f"SELECT count(*) FROM {con_view} WHERE id = ?", params=[row_id]).fetchall()[0][0]
            if found == 0:
                raise LatentError(f"id {row_id!r} is not in the table")
            return fetch(con, sql, [row_id, row_id, k])
        except duckdb.Error as exc:
            raise LatentError(f"neighbors: {_first_line(exc)}") from None
    finally:
        con.close()


def _in_workspace(workspace: Workspace, table: str | Path) -> Path:
    """A table path given on the command line, refused unless it lies in the workspace (after resolving `..` and
    links): the SQL connection reads the workspace and nothing else."""
    path = Path(table).expanduser().resolve()
    if not path.is_relative_to(workspace.root.resolve()):
        raise LatentError(f"--table {table}: not in the workspace {workspace.root}; latent reads only its own tables")
    return path


def write_result(result: pa.Table, out: str | Path) -> Path:
    """Write a query result as CSV or Parquet (by extension), atomically; vectors become text in CSV."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise LatentError(f"--out {out}: expected a .csv or .parquet file name")
    sink = io.BytesIO()
    if suffix == ".parquet":
        pq.write_table(result, sink, compression="zstd")
    else:
        import pyarrow.csv as pacsv

        columns = [
            pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())
            if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_struct(col.type)
            else col
            for col in result.columns
        ]
        pacsv.write_csv(pa.table(columns, names=result.column_names), sink)
    atomic_write_bytes(out, sink.getvalue())
    return out


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split("\n")[0].split())


def select_ids(workspace: Workspace, table: str | Path, predicate: str, limit: int | None = None) -> list[str]:
    """Ids of the rows of one latent table matching an SQL predicate (a WHERE clause, e.g. `label = 7`), in id
    order; the predicate runs in the same read-only sandbox as `latent query`."""
    import duckdb

    info = read_table_info(table)
    if not predicate.strip():
        raise LatentError("predicate: expected an SQL condition such as `label = 7`, got an empty string")
    con = connect(workspace)
    try:
        sql = f"SELECT id FROM ({_view_sql(info)}) WHERE ({predicate}) ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        _check_read_only(con, sql)
        try:
            return [row[0] for row in con.sql(sql).fetchall()]
        except duckdb.Error as exc:
            raise LatentError(f"predicate {predicate!r}: {_first_line(exc)}") from None
    finally:
        con.close()
