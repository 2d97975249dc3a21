"""The Snowflake adapter: connection, table lookup, reads, change tracking, JSON-staged MERGE, probe.

Identifier case rules are in the package docstring (:mod:`planhat_pipelines.warehouses.snowflake`).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import snowflake.connector
from snowflake.connector import SnowflakeConnection
from snowflake.connector.cursor import SnowflakeCursor

from planhat_pipelines.errors import CredentialsError, WarehouseError
from planhat_pipelines.warehouses.base import (
    Capabilities,
    ChangeSet,
    ChangesUnavailable,
    Column,
    MergeResult,
    TableInfo,
    Warehouse,
    validate_identifier,
)
from planhat_pipelines.warehouses.retries import DEFAULT_BOUNDS, RetryBounds, connection_scope
from planhat_pipelines.warehouses.snowflake.connector_errors import (
    AUTH_ERRNOS,
    CANCELLED_ERRNOS,
    CHANGES_UNAVAILABLE,
    UNREACHABLE_ERRNOS,
    connect_error,
    retries_exhausted,
)
from planhat_pipelines.warehouses.snowflake.dialect import (
    KEY,
    STAGE_SEQ,
    changes_sql,
    enable_change_tracking_sql,
    information_schema_columns,
    json_values,
    jsonable,
    quote,
    show_tables_sql,
    split_changes,
    stage_insert_sql,
)

ConnectionFactory = Callable[[], SnowflakeConnection]

#: Upper bound of one bound JSON parameter while staging a merge (Snowflake accepts 16 MB strings).
STAGE_CHUNK_BYTES = 8_000_000


class SnowflakeWarehouse(Warehouse):
    """A Snowflake database/schema reached through snowflake-connector-python.

    Args:
        name: The connection's name in the config.
        connect: Returns a new ``snowflake.connector`` connection made with ``paramstyle="qmark"``.
            Called lazily, once per adapter (again only after :meth:`close`).
        target: How messages describe where this connection points (e.g. ``account 'x' as user 'y'``).
        credentials_fix: What to tell the user when Snowflake refuses the credentials.
        retry_bounds: The bound the connection's retries were given (``network_timeout``), for messages.
    """

    capabilities = Capabilities(views_writable=False, change_tracking=True, dialect="snowflake")
    kind = "snowflake"

    def __init__(
        self,
        name: str,
        connect: ConnectionFactory,
        *,
        target: str = "Snowflake account",
        credentials_fix: str = "check the user's password or key pair in the connection settings",
        retry_bounds: RetryBounds = DEFAULT_BOUNDS,
    ) -> None:
        super().__init__(name)
        self.retry_bounds = retry_bounds
        self._connect = connect
        self.target = target
        self.credentials_fix = credentials_fix
        self._con: SnowflakeConnection | None = None
        self._current: tuple[str, str] | None = None
        self._located: dict[str, tuple[str, str, str]] = {}

    # --- connection ----------------------------------------------------------------------------
    @property
    def con(self) -> SnowflakeConnection:
        """The session, connected on first use; refuses a connection that binds parameters client-side."""
        if self._con is None:
            try:
                with connection_scope(self.name):
                    con = self._connect()
            except snowflake.connector.errors.Error as exc:
                raise self._connect_error(exc) from exc
            if con.is_pyformat:
                con.close()
                raise WarehouseError(
                    self.name,
                    self.target,
                    "the connection binds parameters client-side (paramstyle pyformat)",
                    "connect with paramstyle='qmark' (open_snowflake does)",
                )
            self._con = con
        return self._con

    def close(self) -> None:
        if self._con is not None:
            try:
                self._con.close()
            finally:
                self._con = None
                self._current = None

    def _connect_error(self, exc: snowflake.connector.errors.Error) -> CredentialsError:
        return connect_error(self.name, self.target, self.credentials_fix, exc)

    def _run(
        self, sql: str, params: Sequence[Any] | None = None, *, obj: str, fix: str, timeout: int | None = None
    ) -> SnowflakeCursor:
        cur = self.con.cursor()
        try:
            with connection_scope(self.name):
                cur.execute(sql, params, timeout=timeout)
        except snowflake.connector.errors.Error as exc:
            cur.close()
            self._raise_if_exhausted(obj, exc)
            if getattr(exc, "errno", None) in AUTH_ERRNOS | UNREACHABLE_ERRNOS:
                raise self._connect_error(exc) from exc
            raise WarehouseError(self.name, obj, f"Snowflake refused the statement: {exc}", fix) from exc
        return cur

    def _raise_if_exhausted(self, obj: str, exc: snowflake.connector.errors.Error) -> None:
        exhausted = retries_exhausted(self.name, obj, "statement", self.retry_bounds, exc)
        if exhausted is not None:
            raise exhausted from exc

    def _rows(self, sql: str, params: Sequence[Any] | None = None, *, obj: str, fix: str) -> list[tuple[Any, ...]]:
        cur = self._run(sql, params, obj=obj, fix=fix)
        try:
            return [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()

    # --- naming --------------------------------------------------------------------------------
    def _current_location(self) -> tuple[str, str]:
        if self._current is None:
            row = self._rows("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()", obj=self.target, fix="check the connection")
            database, schema = row[0] if row else (None, None)
            if not database or not schema:
                raise WarehouseError(
                    self.name,
                    self.target,
                    "the session has no current database and schema",
                    "set 'database' and 'schema' in the connection (and grant the role USAGE on them)",
                )
            self._current = (str(database), str(schema))
        return self._current

    def _locate(self, table: str) -> tuple[str, str, str, TableInfo]:
        """Resolve ``table`` to its stored (database, schema, name) and describe it."""
        validate_identifier(self.name, table, "table")
        parts = table.split(".")
        current_db, current_schema = self._current_location()
        database = parts[0].upper() if len(parts) == 3 else current_db
        schemas = [parts[-2].upper(), parts[-2]] if len(parts) > 1 else [current_schema]
        names = [parts[-1].upper(), parts[-1]]
        rows = self._rows(
            "SELECT table_schema, table_name, column_name, data_type, numeric_precision, numeric_scale "
            f"FROM {quote(database)}.INFORMATION_SCHEMA.COLUMNS "
            "WHERE table_schema IN (?, ?) AND table_name IN (?, ?) ORDER BY ordinal_position",
            [schemas[0], schemas[-1], names[0], names[1]],
            obj=f"table '{table}'",
            fix=f"check that database '{database}' exists and the role may use it",
        )
        found = None
        for schema in dict.fromkeys(schemas):
            for name in dict.fromkeys(names):
                if any(r[0] == schema and r[1] == name for r in rows):
                    found = (schema, name)
                    break
            if found:
                break
        if found is None:
            raise WarehouseError(
                self.name,
                f"table '{table}'",
                f"does not exist in {database}.{schemas[0]} (or the role cannot see it)",
                "create it, fix the table name in the section, or grant the connection's role SELECT on it",
            )
        schema, name = found
        columns = information_schema_columns(r for r in rows if (r[0], r[1]) == found)
        # information_schema.tables lists views on Snowflake but not on fakesnow; .views works on both.
        views = self._rows(
            f"SELECT COUNT(*) FROM {quote(database)}.INFORMATION_SCHEMA.VIEWS "
            "WHERE table_schema = ? AND table_name = ?",
            [schema, name],
            obj=f"table '{table}'",
            fix="check the role's privileges",
        )
        info = TableInfo(self.name, table, columns, is_view=bool(views and views[0][0]))
        return database, schema, name, info

    def describe(self, table: str) -> TableInfo:
        database, schema, name, info = self._locate(table)
        self._located[table] = (database, schema, name)
        return info

    def _fqn(self, table: str) -> str:
        if table not in self._located:
            self.describe(table)
        return ".".join(quote(p) for p in self._located[table])

    # --- reading -------------------------------------------------------------------------------
    @staticmethod
    def quote(name: str) -> str:
        return quote(name)

    @staticmethod
    def json_text(column_sql: str) -> str:
        # TO_JSON gives JSON text; a plain VARIANT fetch would already be text in Snowflake, but
        # fakesnow and some connector paths return Python objects, so say it explicitly.
        return f"TO_JSON({column_sql})"

    def _arrow_stream(
        self, sql: str, params: list[tuple[str, int]], batch_size: int, *, ordered: bool, obj: str
    ) -> Iterator[pa.RecordBatch]:
        # Keys are bound as text (see placeholder); one server-side cursor keeps ORDER BY either way.
        cur = self._run(sql, [str(value) for _, value in params], obj=obj, fix="check the mapped columns")
        try:
            for chunk in cur.fetch_arrow_batches():
                yield from chunk.to_batches(max_chunksize=batch_size)
        finally:
            cur.close()

    @staticmethod
    def text_is_key(text_sql: str) -> str:
        return f"REGEXP_LIKE(TRIM({text_sql}), '[0-9]{{1,32}}')"

    @staticmethod
    def text_to_number(text_sql: str) -> str:
        return f"TRY_CAST(TRIM({text_sql}) AS NUMBER(38, 0))"

    def placeholder(self, name: str) -> str:
        # Keys are bound as text and cast here: 32-digit keys do not fit the connector's integer binding.
        return "CAST(? AS NUMBER(38, 0))"

    @staticmethod
    def to_integer(number_sql: str) -> str:
        return f"CAST({number_sql} AS NUMBER(38, 0))"

    def table_sql(self, table: str) -> str:
        return self._fqn(table)

    def _key_rows(self, sql: str, params: list[tuple[str, int]], obj: str) -> list[tuple[Any, ...]]:
        return self._rows(sql, [str(v) for _, v in params], obj=obj, fix="check that the key column holds numbers")

    def query(self, sql: str, *, timeout_seconds: float | None = None, max_bytes_billed: int | None = None) -> pa.Table:
        """Run ``sql`` and return its result; ``max_bytes_billed`` does not apply to Snowflake.

        The timeout is the connector's ``timeout=`` (it cancels the query server-side); fakesnow
        does not implement ``ALTER SESSION SET STATEMENT_TIMEOUT_IN_SECONDS``.
        """
        timeout = max(1, math.ceil(timeout_seconds)) if timeout_seconds else None
        cur = self.con.cursor()
        try:
            with connection_scope(self.name):
                cur.execute(sql, timeout=timeout)
            return cur.fetch_arrow_all(force_return_table=True)
        except snowflake.connector.errors.Error as exc:
            self._raise_if_exhausted("query", exc)
            if getattr(exc, "errno", None) in CANCELLED_ERRNOS:
                raise self._query_timed_out(timeout_seconds) from exc
            raise WarehouseError(self.name, "query", f"failed: {exc}", "fix the SQL") from exc
        finally:
            cur.close()

    # --- change tracking -----------------------------------------------------------------------
    def changes_since(
        self, table: str, columns: Sequence[str], key: str, since: str | None
    ) -> ChangeSet | ChangesUnavailable:
        """Rows changed since ``since`` (an ISO timestamp returned as ``until`` earlier).

        Uses ``CHANGES(INFORMATION => DEFAULT)``: an update shows as a DELETE and an INSERT of the
        same key, so deleted keys are those with a DELETE and no INSERT.
        """
        database, schema, name, info = self._locate(table)
        self._located[table] = (database, schema, name)
        if info.is_view:
            return ChangesUnavailable(f"'{table}' is a view; partial reads are offered for tables only")
        cur = self._run(show_tables_sql(database, schema, name), obj=f"table '{table}'", fix="check privileges")
        try:
            names = [d[0].lower() for d in cur.description]
            rows = cur.fetchall()
        finally:
            cur.close()
        row = next((r for r in rows if r[names.index("name")] == name), None)
        tracking = str(row[names.index("change_tracking")]).upper() if row and "change_tracking" in names else "OFF"
        fqn = ".".join(quote(p) for p in (database, schema, name))
        if tracking != "ON":
            return ChangesUnavailable(
                f"change tracking is off for table '{table}'; to allow partial reads, its owner runs "
                f"{enable_change_tracking_sql(fqn)}"
            )
        key_col = info.column(key)
        select = self.select_list(info, columns) + f", {quote(key_col.name)} AS {quote(KEY)}"
        now = self._rows("SELECT CURRENT_TIMESTAMP()", obj=self.target, fix="check the connection")[0][0]
        until = now.isoformat() if isinstance(now, datetime) else str(now)
        if since is None:
            cur = self._run(f"SELECT {select} FROM {fqn} LIMIT 0", obj=f"table '{table}'", fix="check the columns")
            try:
                empty = cur.fetch_arrow_all(force_return_table=True)
            finally:
                cur.close()
            return ChangeSet(empty.select(list(columns)), empty.column(KEY).combine_chunks(), until)
        cur = self.con.cursor()
        try:
            with connection_scope(self.name):
                cur.execute(changes_sql(fqn, select), [since])
            changes = cur.fetch_arrow_all(force_return_table=True)
        except snowflake.connector.errors.Error as exc:
            self._raise_if_exhausted(f"table '{table}'", exc)
            if CHANGES_UNAVAILABLE.search(str(exc)):
                return ChangesUnavailable(f"Snowflake cannot report changes of '{table}' since {since}: {exc}")
            raise WarehouseError(
                self.name, f"table '{table}'", f"reading changes failed: {exc}", "check privileges"
            ) from exc
        finally:
            cur.close()
        rows, deleted_keys = split_changes(changes, columns)
        return ChangeSet(rows, deleted_keys, until)

    # --- writing -------------------------------------------------------------------------------
    def _merge(self, table: str, data: pa.Table, key: str, info: TableInfo) -> MergeResult:
        """Stage ``data`` in a temporary table (JSON arrays bound as one parameter each), then one MERGE.

        ``write_pandas`` needs PUT and a stage, which fakesnow's server mode lacks; PARSE_JSON +
        FLATTEN works on both and keeps every value bound.
        """
        fqn = self._fqn(table)
        targets = [info.column(c) for c in data.column_names]
        key_col = info.column(key)
        stage = quote(f"PLANHAT_STAGE_{uuid.uuid4().hex[:16].upper()}")
        obj = f"table '{table}'"
        fix = "check that the mapped columns exist with compatible types"
        col_defs = ", ".join(f"{quote(c.name)} {c.type}" for c in targets)
        self._rows(f"CREATE TEMPORARY TABLE {stage} ({col_defs}, {quote(STAGE_SEQ)} NUMBER(38,0))", obj=obj, fix=fix)
        try:
            prepared = jsonable(data)
            insert = stage_insert_sql(stage, targets, data.schema)
            per_chunk = max(1, int(STAGE_CHUNK_BYTES / max(1.0, 1.5 * prepared.nbytes / max(1, prepared.num_rows))))
            for start in range(0, prepared.num_rows, per_chunk):
                text = json_values(prepared.slice(start, per_chunk))
                self._rows(insert, [start, text], obj=obj, fix=fix)
            key_q = quote(key_col.name)
            actions = self.merge_actions({c.name: f"s.{quote(c.name)}" for c in targets}, key_col.name)
            # Last row wins when a key repeats: Snowflake refuses a MERGE whose source matches a row twice.
            cur = self._run(
                f"MERGE INTO {fqn} t USING (SELECT * FROM {stage} QUALIFY ROW_NUMBER() OVER "
                f"(PARTITION BY {key_q} ORDER BY {quote(STAGE_SEQ)} DESC) = 1) s ON t.{key_q} = s.{key_q} {actions}",
                obj=obj,
                fix=fix,
            )
            try:
                labels = [d[0].lower() for d in cur.description]
                counts = cur.fetchone() or ()
            finally:
                cur.close()
            by_label = dict(zip(labels, counts, strict=False))
            return MergeResult(
                inserted=int(by_label.get("number of rows inserted") or 0),
                updated=int(by_label.get("number of rows updated") or 0),
            )
        finally:
            self._rows(f"DROP TABLE IF EXISTS {stage}", obj=obj, fix=fix)

    def _delete_keys(self, table: str, column: Column, keys: list[str]) -> int:
        # One bound JSON array unpacked in SQL, as the merge's staging does (no row-at-a-time binds).
        sql = (
            f"DELETE FROM {self._fqn(table)} WHERE CAST({quote(column.name)} AS VARCHAR) IN "
            "(SELECT value::VARCHAR FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?))))"
        )
        rows = self._rows(sql, [json.dumps(keys)], obj=f"table '{table}'", fix="check the table and its key column")
        return int(rows[0][0]) if rows else 0

    # --- health --------------------------------------------------------------------------------
    def probe(self) -> None:
        cur = self._run("SELECT 1", obj=self.target, fix=self.credentials_fix)
        try:
            cur.fetchall()
        finally:
            cur.close()
