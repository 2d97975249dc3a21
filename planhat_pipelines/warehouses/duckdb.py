"""The embedded default: a DuckDB file as the warehouse."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from planhat_pipelines.errors import CredentialsError, WarehouseError
from planhat_pipelines.sql_quoting import quote_qualified
from planhat_pipelines.warehouses.base import (
    Capabilities,
    Column,
    ColumnKind,
    MergeResult,
    TableInfo,
    Warehouse,
    validate_identifier,
)


def duckdb_kind(type_text: str) -> tuple[ColumnKind, int | None]:
    """Reduce a DuckDB type name to a ColumnKind (and decimal scale)."""
    t = type_text.upper()
    if t.startswith("DECIMAL"):
        scale = int(t.rstrip(")").split(",")[1]) if "," in t else 0
        return ColumnKind.DECIMAL, scale
    if t in {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
    }:
        return ColumnKind.INTEGER, 0
    if t in {"FLOAT", "DOUBLE", "REAL"}:
        return ColumnKind.FLOAT, None
    if t == "BOOLEAN":
        return ColumnKind.BOOLEAN, None
    if t == "DATE":
        return ColumnKind.DATE, None
    if t.startswith("TIMESTAMP"):
        return ColumnKind.TIMESTAMP, None
    if t == "JSON" or t.startswith(("STRUCT", "MAP")) or t.endswith("[]"):
        return ColumnKind.JSON, None
    if t in {"VARCHAR", "TEXT", "STRING", "UUID"}:
        return ColumnKind.TEXT, None
    return ColumnKind.OTHER, None


class DuckDBWarehouse(Warehouse):
    """A DuckDB database file used as the warehouse (the embedded default and the test baseline).

    Args:
        name: The connection's name in the config.
        path: The database file. Reads open it read-write too, so one process at a time.
    """

    capabilities = Capabilities(views_writable=False, change_tracking=False, dialect="duckdb")
    kind = "duckdb"

    def __init__(self, name: str, path: str | Path) -> None:
        super().__init__(name)
        self.path = Path(path)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._read_only = True

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """A connection, read-only unless a write needed it: many processes may read one file at once."""
        if self._con is None:
            self._con = self._connect(read_only=self.path.exists())
        return self._con

    def _connect(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise WarehouseError(
                self.name,
                f"file '{self.path}'",
                f"cannot be opened ({exc})",
                "check the path and that no other process is writing the file",
            ) from exc
        self._read_only = read_only
        return con

    def _writable(self) -> duckdb.DuckDBPyConnection:
        if self._con is None or self._read_only:
            self.close()
            self._con = self._connect(read_only=False)
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _split(self, table: str) -> tuple[str, str]:
        validate_identifier(self.name, table, "table")
        parts = table.split(".")
        return (parts[-2] if len(parts) > 1 else "main", parts[-1])

    def describe(self, table: str) -> TableInfo:
        schema, name = self._split(table)
        row = self.con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchall()
        if not row:
            raise WarehouseError(
                self.name,
                f"table '{table}'",
                "does not exist",
                "create it, or fix the table name in the section",
            )
        cols = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema, name],
        ).fetchall()
        columns = tuple(Column(c, t, *duckdb_kind(t)) for c, t in cols)
        return TableInfo(self.name, table, columns, is_view=row[0][0] == "VIEW")

    @staticmethod
    def quote(name: str) -> str:
        return quote_qualified(name)

    @staticmethod
    def json_text(column_sql: str) -> str:
        return f"CAST(to_json({column_sql}) AS VARCHAR)"

    @staticmethod
    def text_is_key(text_sql: str) -> str:
        return f"regexp_full_match(trim(CAST({text_sql} AS VARCHAR)), '[0-9]{{1,32}}')"

    @staticmethod
    def text_to_number(text_sql: str) -> str:
        return f"TRY_CAST(trim(CAST({text_sql} AS VARCHAR)) AS HUGEINT)"

    @staticmethod
    def to_integer(number_sql: str) -> str:
        return f"CAST({number_sql} AS HUGEINT)"

    def table_sql(self, table: str) -> str:
        self._split(table)
        return quote_qualified(table)

    def _key_rows(self, sql: str, params: list[tuple[str, int]], obj: str) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in self.con.execute(sql, [v for _, v in params]).fetchall()]
        except duckdb.Error as exc:
            raise WarehouseError(self.name, obj, f"key query failed: {exc}", "check the key column") from exc

    def _arrow_stream(
        self, sql: str, params: list[tuple[str, int]], batch_size: int, *, ordered: bool, obj: str
    ) -> Iterator[pa.RecordBatch]:
        # execute() then stream the pending result: a relation built by ``con.sql(sql, params=...)`` streams the
        # same query ~10x slower (measured on duckdb 1.5.5: a 1M-row ordered range 6.3 s against 0.5 s).
        con = self.con
        con.execute(sql, [value for _, value in params])
        yield from con.to_arrow_reader(batch_size)

    def query(self, sql: str, *, timeout_seconds: float | None = None, max_bytes_billed: int | None = None) -> pa.Table:
        con = self.con
        timer = threading.Timer(timeout_seconds, con.interrupt) if timeout_seconds else None
        if timer:
            timer.start()
        try:
            rel = con.sql(sql)
            return rel.to_arrow_table() if rel is not None else pa.table({})
        except duckdb.InterruptException as exc:
            raise self._query_timed_out(timeout_seconds) from exc
        except duckdb.Error as exc:
            raise WarehouseError(self.name, "query", f"failed: {exc}", "fix the SQL") from exc
        finally:
            if timer:
                timer.cancel()

    def _merge(self, table: str, data: pa.Table, key: str, info: TableInfo) -> MergeResult:
        con = self._writable()
        cols = data.column_names
        key_q = quote_qualified(info.column(key).name)
        con.register("__planhat_staged", data)
        try:
            con.execute("BEGIN")
            inserted = con.execute(
                f"SELECT count(*) FROM __planhat_staged __src WHERE NOT EXISTS "
                f"(SELECT 1 FROM {quote_qualified(table)} __tgt WHERE __tgt.{key_q} = __src.{quote_qualified(key)})"
            ).fetchall()[0][0]
            actions = self.merge_actions({c: f"__src.{quote_qualified(c)}" for c in cols}, key)
            con.execute(
                f"MERGE INTO {quote_qualified(table)} __tgt USING __planhat_staged __src "
                f"ON __tgt.{key_q} = __src.{quote_qualified(key)} {actions}"
            )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise WarehouseError(
                self.name,
                f"table '{table}'",
                f"merge failed: {exc}",
                "check that the mapped columns exist with compatible types",
            ) from exc
        finally:
            con.unregister("__planhat_staged")
        return MergeResult(inserted=int(inserted), updated=data.num_rows - int(inserted))

    def _delete_keys(self, table: str, column: Column, keys: list[str]) -> int:
        con = self._writable()
        con.register("__planhat_keys", pa.table({"k": pa.array(keys, pa.string())}))
        try:
            return int(
                con.execute(
                    f"DELETE FROM {quote_qualified(table)} WHERE CAST({quote_qualified(column.name)} AS VARCHAR) "
                    "IN (SELECT k FROM __planhat_keys)"
                ).fetchall()[0][0]
            )
        except duckdb.Error as exc:
            raise WarehouseError(
                self.name, f"table '{table}'", f"delete failed: {exc}", "check the table and its key column"
            ) from exc
        finally:
            con.unregister("__planhat_keys")

    def probe(self) -> None:
        if not self.path.exists():
            raise CredentialsError(
                self.name,
                f"file '{self.path}'",
                "does not exist",
                "run `make demo` to create it, or fix the path in the config",
            )
        try:
            self.con.execute("SELECT 1").fetchall()
        except duckdb.Error as exc:
            raise CredentialsError(self.name, f"file '{self.path}'", str(exc), "check the file") from exc
