"""Pieces shared by the CRM receive and send: constants, SQL literals, staging temp tables."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import duckdb
import pyarrow as pa

#: Rows per Arrow chunk handed to the store upsert and to the warehouse merge.
DEFAULT_BATCH_SIZE = 50_000
#: The key recorded for rejects whose key is null or empty (rejected_rows.key is NOT NULL).
NULL_KEY = "(null)"
#: Prefix of a Company ``parentId`` whose parent arrives in the same run; resolved before the commit.
#: A control character no key holds (trimmed keys lose it), but not NUL: DuckDB 1.5's parser ends a query
#: at a NUL byte inside a literal.
PENDING_PARENT = "\x1fpending-parent:"


def json_path(path: str) -> str:
    """A dotted attribute path (``plan.tier``) as a DuckDB JSON path with every part quoted."""
    return "$" + "".join('."' + part.replace('"', '\\"') + '"' for part in path.split("."))


def stage(
    con: duckdb.DuckDBPyConnection, name: str, batches: Iterable[pa.RecordBatch], columns: list[str], extra: str = ""
) -> int:
    """Stream ``batches`` into temp table ``name`` (columns renamed to ``columns``); returns its row count.

    ``extra`` adds computed columns (SQL select items over the rows as ``r``, with a leading comma).
    """
    it: Iterator[pa.RecordBatch] = iter(batches)
    first = next(it, None)
    if first is None:
        reader = pa.table({c: pa.array([], pa.string()) for c in columns}).to_reader()
    else:
        # Adapters may return other letter case (Snowflake upper-cases); the requested names are canonical.
        schema = pa.schema([pa.field(c, t) for c, t in zip(columns, first.schema.types, strict=True)])
        renamed = (b.rename_columns(columns) for b in itertools.chain([first], it))
        reader = pa.RecordBatchReader.from_batches(schema, renamed)
    con.register("__crm_in", reader)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT *{extra} FROM __crm_in r")
    finally:
        con.unregister("__crm_in")
    return int(con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0])


def drop(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Drop the temp tables ``names`` (those that exist)."""
    for name in names:
        con.execute(f"DROP TABLE IF EXISTS {name}")
