"""BigQuery's dialect pieces: identifier quoting, column types and key parameters.

Pure functions over google-cloud-bigquery's types: no client, no network, no environment.
"""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
from google.cloud import bigquery

from planhat_pipelines.errors import WarehouseError
from planhat_pipelines.sql_quoting import quote_qualified
from planhat_pipelines.warehouses.base import Column, ColumnKind, TableInfo

# BigQuery's REST API reports legacy type names; these are the standard SQL names used in CASTs.
_STANDARD_TYPE = {
    "INTEGER": "INT64",
    "FLOAT": "FLOAT64",
    "BOOLEAN": "BOOL",
    "RECORD": "STRUCT",
}
_KINDS = {
    "INT64": ColumnKind.INTEGER,
    "FLOAT64": ColumnKind.FLOAT,
    "BOOL": ColumnKind.BOOLEAN,
    "STRING": ColumnKind.TEXT,
    "DATE": ColumnKind.DATE,
    "TIMESTAMP": ColumnKind.TIMESTAMP,
    "DATETIME": ColumnKind.TIMESTAMP,
    "JSON": ColumnKind.JSON,
    "STRUCT": ColumnKind.JSON,
}
# Standard SQL types a staged (Parquet-typed) column is CAST to before it is merged.
_CASTABLE = frozenset(
    {"INT64", "FLOAT64", "BOOL", "STRING", "BYTES", "NUMERIC", "BIGNUMERIC", "DATE", "DATETIME", "TIME", "TIMESTAMP"}
)
# Scales BigQuery uses when a NUMERIC/BIGNUMERIC column has no declared parameters.
_DEFAULT_SCALE = {"NUMERIC": 9, "BIGNUMERIC": 38}
_INT64_MAX = 2**63 - 1


def quote(name: str) -> str:
    """Backtick-quote a (possibly dotted) identifier for BigQuery's standard SQL.

    Args:
        name: An identifier, optionally qualified with dots (``dataset.table``).

    Returns:
        Each part in backticks, joined by dots.

    Raises:
        ValueError: ``name`` contains a backtick or backslash (it cannot be quoted safely).
    """
    return quote_qualified(name, "bigquery")


def bigquery_column(field: bigquery.SchemaField) -> Column:
    """Reduce a BigQuery schema field to a Column (kind, standard SQL type text and decimal scale).

    Args:
        field: One field of a table's schema, as the REST API describes it.

    Returns:
        The column; a REPEATED field is ``ARRAY<...>`` of kind JSON.
    """
    base = _STANDARD_TYPE.get(field.field_type.upper(), field.field_type.upper())
    kind = _KINDS.get(base, ColumnKind.OTHER)
    scale: int | None = 0 if kind is ColumnKind.INTEGER else None
    type_text = base
    if base in _DEFAULT_SCALE:
        kind = ColumnKind.DECIMAL
        scale = field.scale if field.scale is not None else _DEFAULT_SCALE[base]
        if field.precision is not None:
            type_text = f"{base}({field.precision}, {scale})"
    if field.mode == "REPEATED":
        return Column(field.name, f"ARRAY<{type_text}>", ColumnKind.JSON, None)
    return Column(field.name, type_text, kind, scale)


def key_parameters(named: list[tuple[str, int]]) -> list[bigquery.ScalarQueryParameter]:
    """Key bounds as query parameters: INT64 where they fit, BIGNUMERIC for longer keys (up to 32 digits).

    Args:
        named: (name, value) pairs, as :meth:`KeyRange.where` returns them.

    Returns:
        One scalar parameter per pair, in order.
    """
    return [
        bigquery.ScalarQueryParameter(name, "INT64", value)
        if abs(value) <= _INT64_MAX
        else bigquery.ScalarQueryParameter(name, "BIGNUMERIC", Decimal(value))
        for name, value in named
    ]


def merge_assignments(connection: str, table: str, data: pa.Table, info: TableInfo) -> dict[str, str]:
    """The MERGE's value of each target column, read from the staged column ``__src.<name>``.

    Args:
        connection: The connection's name, used in the message.
        table: The target table, as the section names it.
        data: The records to merge (their Arrow types are the staged Parquet types).
        info: The target table's description.

    Returns:
        Target column name -> SQL expression: JSON parsed from text (or converted), castable types
        cast to the target's standard SQL type, anything else as staged.

    Raises:
        WarehouseError: A target column is an ARRAY or STRUCT, which JSON text cannot be written to.
    """
    assignments: dict[str, str] = {}
    for name in data.column_names:
        col = info.column(name)
        source = f"__src.{quote(name)}"
        if col.type.startswith("ARRAY<") or col.type == "STRUCT":
            raise WarehouseError(
                connection,
                f"table '{table}'",
                f"column '{col.name}' is {col.type}, which cannot be written from JSON text",
                "map the field to a STRING or JSON column instead",
            )
        if col.type == "JSON":
            is_text = pa.types.is_string(data.schema.field(name).type) or pa.types.is_large_string(
                data.schema.field(name).type
            )
            assignments[col.name] = f"PARSE_JSON({source})" if is_text else f"TO_JSON({source})"
        elif col.type.split("(")[0] in _CASTABLE:
            # The staged column has Parquet's type (FLOAT64 for a double, ...): cast to the target's.
            assignments[col.name] = f"CAST({source} AS {col.type.split('(')[0]})"
        else:
            assignments[col.name] = source
    return assignments
