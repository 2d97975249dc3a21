"""Copying the demo data into an emulator, through each warehouse's own client.

The demo data is made by :func:`~planhat_pipelines.demo.generate.seed_demo` in a local DuckDB file and copied
in with google-cloud-bigquery or snowflake-connector-python, never through the adapters the demo then
exercises. :func:`snowflake_type` is also what the tests' Snowflake harness and the benchmarks create tables with.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from planhat_pipelines.sql_quoting import quote_identifier as _dq
from planhat_pipelines.warehouses.snowflake.dialect import json_values

#: Demo tables that grow: only rows with a key above the target's maximum are copied. Every other
#: table is copied once, when the target lacks it (CRM tables; the sync writes back into some of them).
APPEND_KEYS = {"usage_events": "event_id", "usage_metrics": "metric_id"}
#: The read-only reporting view the demo warehouse has beside its tables: name -> (table, columns).
DEMO_VIEWS = {"crm_company_report": ("crm_companies", ("company_key", "name", "phase"))}
#: Rows per batch read from the DuckDB source.
COPY_BATCH_ROWS = 200_000
#: Upper bound of one JSON array bound as a single Snowflake parameter.
SNOWFLAKE_CHUNK_BYTES = 4_000_000


@dataclass(frozen=True)
class CopyResult:
    """Rows copied into the emulator, per table (zero for tables that were up to date)."""

    rows: dict[str, int]

    def describe(self) -> str:
        """``usage_events +52, usage_metrics +8`` (the tables that grew), or ``nothing new``."""
        copied = [f"{t} +{n:,}" for t, n in self.rows.items() if n]
        return ", ".join(copied) if copied else "nothing new"


class SeedTarget(Protocol):
    """What copying needs from an emulator; written with each warehouse's own client."""

    def exists(self, table: str) -> bool: ...
    def create(self, table: str, schema: pa.Schema, json_columns: Sequence[str]) -> None: ...
    def max_key(self, table: str, key: str) -> int | None: ...
    def append(self, table: str, batch: pa.Table, json_columns: Sequence[str]) -> None: ...
    def create_view(self, view: str, table: str, columns: Sequence[str]) -> None: ...


def _select_list(cols: Sequence[tuple[str, str]]) -> str:
    # JSON travels as text: Parquet and JSON arrays carry it that way, the target parses it back.
    return ", ".join(f"CAST({_dq(n)} AS VARCHAR) AS {_dq(n)}" if t == "JSON" else _dq(n) for n, t in cols)


def copy_new_rows(source: Path, target: SeedTarget) -> CopyResult:
    """Copy the source's tables into ``target``: missing tables whole, growing tables above their max key.

    Args:
        source: The DuckDB file :func:`seed_demo` filled.
        target: The emulator, seen through its own client.
    """
    rows: dict[str, int] = {}
    con = duckdb.connect(str(source), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY table_name").fetchall()]
        for table in tables:
            cols: list[tuple[str, str]] = con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
                [table],
            ).fetchall()
            json_cols = [name for name, type_ in cols if type_ == "JSON"]
            select = f"SELECT {_select_list(cols)} FROM {_dq(table)}"
            key = APPEND_KEYS.get(table)
            after: int | None = None
            if not target.exists(table):
                target.create(table, con.sql(f"{select} LIMIT 0").to_arrow_table().schema, json_cols)
            elif key is None:
                rows[table] = 0  # copied once; the sync may have written into it since
                continue
            else:
                after = target.max_key(table, key)
            if key is not None:
                select += f" WHERE {_dq(key)} > {int(after) if after is not None else -(2**63)} ORDER BY {_dq(key)}"
            count = 0
            for batch in con.sql(select).to_arrow_reader(COPY_BATCH_ROWS):
                if batch.num_rows:
                    target.append(table, pa.Table.from_batches([batch]), json_cols)
                    count += batch.num_rows
            rows[table] = count
        for view, (table, columns) in DEMO_VIEWS.items():
            target.create_view(view, table, columns)
    finally:
        con.close()
    return CopyResult(rows)


def _bq_quote(name: str) -> str:
    return ".".join(f"`{part}`" for part in name.split("."))


def _bigquery_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "BOOL"
    if pa.types.is_integer(t):
        return "INT64"
    if pa.types.is_floating(t):
        return "FLOAT64"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    return "STRING"


class BigQueryTarget:
    """A dataset in the emulator, written through google-cloud-bigquery (Parquet loads, then SQL)."""

    def __init__(self, client: Any, project: str, dataset: str) -> None:
        from google.cloud import bigquery

        self._bq = bigquery
        self.client = client
        self.project = project
        self.dataset = dataset
        client.create_dataset(f"{project}.{dataset}", exists_ok=True)

    def _id(self, table: str) -> str:
        return f"{self.project}.{self.dataset}.{table}"

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        config = self._bq.QueryJobConfig(default_dataset=f"{self.project}.{self.dataset}", query_parameters=params)
        return [tuple(r.values()) for r in self.client.query(sql, job_config=config).result()]

    def exists(self, table: str) -> bool:
        from google.api_core.exceptions import NotFound

        try:
            self.client.get_table(self._id(table))
        except NotFound:
            return False
        return True

    def create(self, table: str, schema: pa.Schema, json_columns: Sequence[str]) -> None:
        cols = ", ".join(
            f"{_bq_quote(f.name)} {'JSON' if f.name in json_columns else _bigquery_type(f.type)}" for f in schema
        )
        self._run(f"CREATE TABLE IF NOT EXISTS {_bq_quote(self._id(table))} ({cols})")

    def max_key(self, table: str, key: str) -> int | None:
        value = self._run(f"SELECT max({_bq_quote(key)}) FROM {_bq_quote(self._id(table))}")[0][0]
        return None if value is None else int(value)

    def append(self, table: str, batch: pa.Table, json_columns: Sequence[str]) -> None:
        import pyarrow.parquet as pq

        # Parquet has no JSON type: load into a staging table as text, then INSERT with PARSE_JSON.
        staging = self._id(f"_seed_{table}")
        buffer = io.BytesIO()
        pq.write_table(batch, buffer)
        buffer.seek(0)
        config = self._bq.LoadJobConfig(source_format="PARQUET", write_disposition="WRITE_TRUNCATE")
        self.client.load_table_from_file(buffer, staging, job_config=config).result()
        try:
            names = ", ".join(_bq_quote(f.name) for f in batch.schema)
            exprs = ", ".join(
                f"PARSE_JSON({_bq_quote(f.name)})"
                if f.name in json_columns
                else f"CAST({_bq_quote(f.name)} AS {_bigquery_type(f.type)})"
                for f in batch.schema
            )
            self._run(f"INSERT INTO {_bq_quote(self._id(table))} ({names}) SELECT {exprs} FROM {_bq_quote(staging)}")
        finally:
            self.client.delete_table(staging, not_found_ok=True)

    def create_view(self, view: str, table: str, columns: Sequence[str]) -> None:
        select = ", ".join(_bq_quote(c) for c in columns)
        self._run(
            f"CREATE OR REPLACE VIEW {_bq_quote(self._id(view))} AS SELECT {select} FROM {_bq_quote(self._id(table))}"
        )


def snowflake_type(t: pa.DataType) -> str:
    """The Snowflake column type a seeded table uses for an Arrow type (the demo, the tests' harness)."""
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "NUMBER(38,0)"
    if pa.types.is_floating(t):
        return "FLOAT"
    if pa.types.is_decimal(t):
        return f"NUMBER({t.precision},{t.scale})"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP_NTZ"
    return "VARCHAR"


class SnowflakeTarget:
    """A schema in fakesnow, written through snowflake-connector-python (JSON arrays unpacked by FLATTEN).

    Tables are created with unquoted names, as people type them; Snowflake stores them upper-case.
    ``executemany`` sends one row per request to fakesnow, so each chunk of rows travels as one JSON
    array bound as a single parameter, as the adapter's merge does.
    """

    def __init__(self, con: Any) -> None:
        self.con = con

    def _run(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.con.cursor() as cur:
            cur.execute(sql, params)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []

    def exists(self, table: str) -> bool:
        rows = self._run(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = CURRENT_SCHEMA() AND table_name = ?",
            [table.upper()],
        )
        return bool(rows[0][0])

    def create(self, table: str, schema: pa.Schema, json_columns: Sequence[str]) -> None:
        cols = ", ".join(f"{f.name} {'VARIANT' if f.name in json_columns else snowflake_type(f.type)}" for f in schema)
        self._run(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")

    def max_key(self, table: str, key: str) -> int | None:
        value = self._run(f"SELECT max({key}) FROM {table}")[0][0]
        return None if value is None else int(value)

    def append(self, table: str, batch: pa.Table, json_columns: Sequence[str]) -> None:
        exprs = ", ".join(
            f"PARSE_JSON(f.value[{i}]::VARCHAR)"
            if f.name in json_columns
            else f"f.value[{i}]::{snowflake_type(f.type)}"
            for i, f in enumerate(batch.schema)
        )
        sql = (
            f"INSERT INTO {table} ({', '.join(batch.column_names)}) "
            f"SELECT {exprs} FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?))) f"
        )
        # Numbers, dates and times as text: JSON keeps every digit and Snowflake casts them back.
        text = pa.table(
            [
                c if pa.types.is_boolean(c.type) or pa.types.is_string(c.type) else pc.cast(c, pa.string())
                for c in batch.columns
            ],
            names=batch.column_names,
        )
        per_chunk = max(1, int(SNOWFLAKE_CHUNK_BYTES / max(1.0, 1.5 * text.nbytes / max(1, text.num_rows))))
        for start in range(0, text.num_rows, per_chunk):
            payload = json_values(text.slice(start, per_chunk))
            self._run(sql, [payload])

    def create_view(self, view: str, table: str, columns: Sequence[str]) -> None:
        self._run(f"CREATE OR REPLACE VIEW {view} AS SELECT {', '.join(columns)} FROM {table}")
