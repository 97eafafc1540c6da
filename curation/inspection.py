"""``judgeforge inspect``: what is in a run — counts, per-column statistics, sample rows, ad-hoc SQL.

Everything is computed by DuckDB over the run's Parquet shards (one aggregate query for all column
statistics), so inspecting a million-row run reads only the columns it needs and never builds Python
lists of rows. Struct columns (``meta``) are described field by field. ``--sql`` runs any query with
the run available as a table named after its kind (``SELECT count(*) FROM step_prefs``).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pyarrow as pa

from judgeforge.curation.filters import ident, one_row
from judgeforge.errors import UserError


def _flat_fields(schema: pa.Schema) -> list[tuple[str, str, pa.DataType]]:
    """``(label, SQL expression, type)`` for every column, struct fields one level down."""
    out = []
    for f in schema:
        if pa.types.is_struct(f.type):
            for i in range(f.type.num_fields):
                child = f.type.field(i)
                out.append((f"{f.name}.{child.name}", f"{ident(f.name)}.{ident(child.name)}", child.type))
        else:
            out.append((f.name, ident(f.name), f.type))
    return out


def _aggregates(expr: str, dtype: pa.DataType) -> tuple[list[str], str]:
    """SQL aggregates for one column and a format string for their values."""
    nulls = f"count(*) FILTER (WHERE {expr} IS NULL)"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return [
            nulls,
            f"approx_count_distinct({expr})",
            f"min(length({expr}))",
            f"avg(length({expr}))",
            f"max(length({expr}))",
        ], "~{1} distinct · length {2}/{3:.1f}/{4} (min/mean/max)"
    if pa.types.is_boolean(dtype):
        return [nulls, f"count(*) FILTER (WHERE {expr})", f"count(*) FILTER (WHERE NOT {expr})"], "true {1} · false {2}"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
        return [nulls, f"min({expr})", f"avg({expr})", f"max({expr})"], "{1:g}/{2:.3g}/{3:g} (min/mean/max)"
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return [nulls, f"min(len({expr}))", f"avg(len({expr}))", f"max(len({expr}))"], "items {1}/{2:.2f}/{3} (min/mean/max)"
    return [nulls], ""


def column_stats(con: duckdb.DuckDBPyConnection, table: str, schema: pa.Schema) -> list[tuple[str, str, int, str]]:
    """``(column, type, nulls, summary)`` for every column of ``table``, from one scan."""
    fields = _flat_fields(schema)
    plans = [_aggregates(expr, dtype) for _, expr, dtype in fields]
    select = ", ".join(agg for aggs, _ in plans for agg in aggs)
    values = list(one_row(con, f"SELECT {select} FROM {ident(table)}"))
    out = []
    for (label, _, dtype), (aggs, fmt) in zip(fields, plans, strict=True):
        mine, values = values[: len(aggs)], values[len(aggs) :]
        summary = "-" if any(v is None for v in mine) else fmt.format(*mine)
        out.append((label, str(dtype), int(mine[0]), summary))
    return out


def samples(con: duckdb.DuckDBPyConnection, table: str, n: int) -> list[dict[str, Any]]:
    """The first ``n`` rows, each value shortened for display."""
    rows = con.sql(f"SELECT * FROM {ident(table)} LIMIT {int(n)}").to_arrow_table().to_pylist()
    return [{k: shorten(v) for k, v in row.items()} for row in rows]


def shorten(value: Any, width: int = 240) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def run_sql(con: duckdb.DuckDBPyConnection, query: str, max_rows: int, table: str) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """Run ``query`` over the run, the table ``table``; returns its column names, at most ``max_rows`` rows, and
    whether more were left. A query naming a table that does not exist is told the table's name."""
    try:
        con.execute(query)
        columns = [d[0] for d in con.description or []]
        rows = con.fetchmany(max_rows + 1) if columns else []
        con.abort()
    except duckdb.CatalogException as exc:
        message = str(exc).strip().splitlines()[0]
        if "Table with name" in message:
            message += f" The run is the table named after its kind: {table} (e.g. SELECT count(*) FROM {table})."
        raise UserError(f"--sql: {message}") from exc
    except duckdb.Error as exc:
        raise UserError(f"--sql: {str(exc).strip().splitlines()[0]}") from exc
    return columns, rows[:max_rows], len(rows) > max_rows
