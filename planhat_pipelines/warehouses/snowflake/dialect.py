"""Snowflake's dialect pieces: quoting, column types, the change-tracking SQL and merge staging.

Pure functions: no connection, no environment. The change-tracking SQL is kept small and separate
because fakesnow cannot run it, so tests parse it with sqlglot's snowflake dialect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from planhat_pipelines.sql_quoting import quote_identifier, quote_literal
from planhat_pipelines.warehouses.base import Column, ColumnKind

#: The staging table's row-order column: the last of several rows with one key wins the MERGE.
STAGE_SEQ = "__PLANHAT_SEQ"
#: The column :func:`changes_sql` adds for Snowflake's ``METADATA$ACTION`` (INSERT/DELETE).
ACTION = "__planhat_action"
#: The key column :meth:`SnowflakeWarehouse.changes_since` adds, to find deleted keys.
KEY = "__planhat_key"


def quote(name: str) -> str:
    """Double-quote one identifier part for Snowflake (case preserved)."""
    return quote_identifier(name, "snowflake")


def snowflake_kind(type_text: str, scale: int | None = None) -> tuple[ColumnKind, int | None]:
    """Reduce a Snowflake type (``NUMBER(38,0)``, ``TEXT``, ``TIMESTAMP_NTZ(9)``, ``VARIANT``...) to a ColumnKind.

    Args:
        type_text: The type as information_schema, DESCRIBE or SHOW spells it.
        scale: The decimal scale when known separately (information_schema.columns.numeric_scale).

    Returns:
        The kind and, for numbers, the scale.
    """
    t = type_text.strip().upper()
    base = t.split("(", 1)[0].strip()
    if base in {"NUMBER", "DECIMAL", "NUMERIC", "FIXED"}:
        if scale is None:
            match = re.match(r"^\w+\(\s*\d+\s*,\s*(\d+)\s*\)$", t)
            scale = int(match.group(1)) if match else 0
        return (ColumnKind.INTEGER, 0) if scale == 0 else (ColumnKind.DECIMAL, scale)
    if base in {"INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT"}:
        return ColumnKind.INTEGER, 0
    if base in {"FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION", "REAL", "DECFLOAT"}:
        return ColumnKind.FLOAT, None
    if base in {"TEXT", "VARCHAR", "STRING", "CHAR", "CHARACTER", "NCHAR", "NVARCHAR", "NVARCHAR2", "CHAR VARYING"}:
        return ColumnKind.TEXT, None
    if base == "BOOLEAN":
        return ColumnKind.BOOLEAN, None
    if base == "DATE":
        return ColumnKind.DATE, None
    if base.startswith(("TIMESTAMP", "DATETIME")):
        return ColumnKind.TIMESTAMP, None
    if base in {"VARIANT", "OBJECT", "ARRAY"}:
        return ColumnKind.JSON, None
    return ColumnKind.OTHER, None


def show_tables_sql(database: str, schema: str, table: str) -> str:
    """``SHOW TABLES`` for one table (its ``change_tracking`` column says ON or OFF).

    SHOW takes no bind variables; ``table`` is a validated identifier, and the caller still
    filters the rows by exact name because ``_`` is a LIKE wildcard.
    """
    return f"SHOW TABLES LIKE {quote_literal(table, 'snowflake')} IN SCHEMA {quote(database)}.{quote(schema)}"


def changes_sql(qualified_table: str, select_list: str) -> str:
    """Rows changed since the bound timestamp, with Snowflake's ``METADATA$ACTION`` (INSERT/DELETE).

    ``TO_TIMESTAMP_LTZ(?)`` rather than ``?::TIMESTAMP_LTZ``: same meaning, and sqlglot parses it.
    """
    return (
        f'SELECT {select_list}, "METADATA$ACTION" AS {quote(ACTION)} FROM {qualified_table} '
        "CHANGES(INFORMATION => DEFAULT) AT(TIMESTAMP => TO_TIMESTAMP_LTZ(?))"
    )


def enable_change_tracking_sql(qualified_table: str) -> str:
    """What an owner runs to let :meth:`SnowflakeWarehouse.changes_since` read partial changes."""
    return f"ALTER TABLE {qualified_table} SET CHANGE_TRACKING = TRUE"


def split_changes(changes: pa.Table, columns: Sequence[str]) -> tuple[pa.Table, pa.Array]:
    """Split a CHANGES result (with the action and key columns :func:`changes_sql` adds) into rows and deleted keys.

    An update is a DELETE plus an INSERT of the same key, so a key is deleted only when it has a
    DELETE and no INSERT.
    """
    action = changes.column(ACTION)
    inserted = changes.filter(pc.equal(action, "INSERT"))
    deleted = pc.unique(changes.filter(pc.equal(action, "DELETE")).column(KEY).combine_chunks())
    gone = deleted.filter(pc.invert(pc.is_in(deleted, value_set=inserted.column(KEY).combine_chunks())))
    return inserted.select(list(columns)), gone


def is_string(t: pa.DataType) -> bool:
    """Whether ``t`` is an Arrow string type (plain or large)."""
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def jsonable(data: pa.Table) -> pa.Table:
    """``data`` with numbers, dates and times as text, so JSON keeps every digit and Snowflake casts them."""
    arrays = []
    for col in data.columns:
        t = col.type
        if pa.types.is_boolean(t) or is_string(t) or pa.types.is_nested(t):
            arrays.append(col)
        else:
            arrays.append(pc.cast(col, pa.string()))
    return pa.table(arrays, names=data.column_names)


def json_values(data: pa.Table) -> str:
    """The rows of ``data`` as one JSON array of arrays, in row order (what ``PARSE_JSON`` + ``FLATTEN`` unpack).

    DuckDB builds the text (``json_array`` per row, aggregated in row order), so no row passes through
    Python. Columns keep their JSON types: booleans stay booleans, text stays text (see :func:`jsonable`).
    """
    columns = ", ".join(quote_identifier(name, "duckdb") for name in data.column_names)
    order = pc.subtract(pc.cumulative_sum(pa.repeat(1, data.num_rows)), 1)
    con = duckdb.connect()
    try:
        con.register("__rows", data.append_column("__planhat_row", order))
        found = con.execute(
            f"SELECT CAST(COALESCE(to_json(list(json_array({columns}) ORDER BY __planhat_row)), '[]') AS VARCHAR) "
            "FROM __rows"
        ).fetchone()
    finally:
        con.close()
    return str(found[0]) if found else "[]"


def information_schema_columns(rows: Iterable[Sequence[Any]]) -> tuple[Column, ...]:
    """Columns from ``information_schema.columns`` rows of one table, in order.

    Args:
        rows: (table_schema, table_name, column_name, data_type, numeric_precision, numeric_scale).

    Returns:
        The columns; a plain ``NUMBER`` gets its precision and scale in its type text (``NUMBER(38,0)``).
    """
    columns = []
    for _, _, col, data_type, precision, scale in rows:
        kind, sc = snowflake_kind(str(data_type), None if scale is None else int(scale))
        type_text = str(data_type)
        if type_text.upper() == "NUMBER" and precision is not None:
            type_text = f"NUMBER({int(precision)},{sc or 0})"
        columns.append(Column(str(col), type_text, kind, sc))
    return tuple(columns)


def stage_insert_sql(stage: str, targets: Sequence[Column], schema: pa.Schema) -> str:
    """The INSERT that unpacks one bound JSON array of rows (and a bound row offset) into the staging table.

    Args:
        stage: The quoted staging table.
        targets: The target columns, in the order of the rows' values.
        schema: The Arrow schema of the records (JSON columns given as text are parsed, others kept).

    Returns:
        ``INSERT ... SELECT ... FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?)))`` binding the offset, then the JSON.
    """
    exprs = []
    for i, (col, field) in enumerate(zip(targets, schema, strict=True)):
        value = f"f.value[{i}]"
        if col.kind is ColumnKind.JSON:
            exprs.append(f"PARSE_JSON({value}::VARCHAR)" if is_string(field.type) else value)
        else:
            exprs.append(f"{value}::{col.type}")
    return (
        f"INSERT INTO {stage} ({', '.join(quote(c.name) for c in targets)}, {quote(STAGE_SEQ)}) "
        f"SELECT {', '.join(exprs)}, f.index + ? FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?))) f"
    )
