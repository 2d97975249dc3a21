"""The one warehouse interface every adapter (DuckDB, BigQuery, Snowflake) implements.

Callers never branch on the warehouse type: they read ``capabilities``. Identifiers that come
from the config go through :func:`validate_identifier` and are quoted by the adapter; values are
always bound parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from planhat_pipelines.errors import ReadOnlyTargetError, WarehouseError

# Re-exported: callers import every warehouse type from this module.
from planhat_pipelines.warehouses.keys import FLOAT_KEY_LIMIT, KEY_DIGITS, KEY_LIMIT, KeyRange
from planhat_pipelines.warehouses.results import ChangeSet, ChangesUnavailable, MergeResult
from planhat_pipelines.warehouses.tables import Column, ColumnKind, TableInfo, validate_identifier

__all__ = [
    "FLOAT_KEY_LIMIT",
    "KEY_DIGITS",
    "KEY_LIMIT",
    "Capabilities",
    "ChangeSet",
    "ChangesUnavailable",
    "Column",
    "ColumnKind",
    "KeyRange",
    "MergeResult",
    "TableInfo",
    "Warehouse",
    "validate_identifier",
]


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can do; callers decide on these flags, never on the adapter's type.

    Attributes:
        views_writable: Whether a view can be a write target (no warehouse here allows it).
        change_tracking: Whether :meth:`Warehouse.changes_since` can return partial change sets.
        dialect: The sqlglot dialect name used to check SQL for this warehouse.
    """

    views_writable: bool = False
    change_tracking: bool = False
    dialect: str = "duckdb"


class Warehouse(ABC):
    """A named warehouse connection.

    Subclasses implement the abstract methods and set ``capabilities``. All reads return Arrow;
    memory stays bounded by ``batch_size``.
    """

    capabilities: Capabilities = Capabilities()
    kind: str = "warehouse"

    def __init__(self, name: str) -> None:
        self.name = name

    # --- SQL of the adapter's dialect --------------------------------------------------------
    @staticmethod
    @abstractmethod
    def quote(name: str) -> str:
        """The identifier quoted for this warehouse's SQL."""

    @staticmethod
    @abstractmethod
    def json_text(column_sql: str) -> str:
        """SQL turning a semi-structured column (JSON, VARIANT, STRUCT, ...) into JSON text, NULL kept NULL."""

    def select_list(self, info: TableInfo, columns: Sequence[str]) -> str:
        """``col AS name, ...`` for ``columns`` of ``info``: JSON-like columns as JSON text, aliased as asked."""
        parts = []
        for name in columns:
            col = info.column(name)
            validate_identifier(self.name, name, "column")
            expr = self.json_text(self.quote(col.name)) if col.kind is ColumnKind.JSON else self.quote(col.name)
            parts.append(f"{expr} AS {self.quote(name)}")
        return ", ".join(parts)

    # --- numeric keys: dialect pieces, then the key operations built once on them ---------
    @staticmethod
    @abstractmethod
    def text_is_key(text_sql: str) -> str:
        """SQL that is TRUE when text is 1 to 32 digits, surrounding whitespace allowed (a regular expression)."""

    @staticmethod
    @abstractmethod
    def text_to_number(text_sql: str) -> str:
        """SQL casting text that :meth:`text_is_key` accepts to an exact integer (NULL, never an error, otherwise)."""

    @staticmethod
    @abstractmethod
    def to_integer(number_sql: str) -> str:
        """SQL casting a valid key (a whole number below 10**32) to the dialect's widest exact integer."""

    #: The literal 10**32 in this dialect, comparable with exact (integer and decimal) columns.
    key_limit_literal: str = str(KEY_LIMIT)

    def integer_key_sql(self, column: Column) -> str:
        """The valid key of ``column`` as an exact integer (integer and text columns as :meth:`key_sql` gives)."""
        key = self.key_sql(column)
        return key if column.kind in (ColumnKind.INTEGER, ColumnKind.TEXT) else self.to_integer(key)

    def key_sql(self, column: Column) -> str:
        """The key column as a number: itself when numeric, a safe cast when it is text (e.g. '00123')."""
        quoted = self.quote(column.name)
        return self.text_to_number(quoted) if column.kind is ColumnKind.TEXT else quoted

    def valid_key_sql(self, column: Column) -> str:
        """SQL that is TRUE exactly when the key is valid: a whole number ``0 <= key < 10**32``.

        NULL, negative, fractional, non-finite (NaN is not below the limit, or not at least 0, in every
        dialect here), too long and non-numeric text keys are not valid, nor float keys from 2**53 on (a float
        cannot hold every whole number there); exact columns compare with an exact literal. Text keys are
        valid when they are 1 to 32 digits (a regular expression: no big-number cast can fail on them).
        """
        if column.kind is ColumnKind.TEXT:
            return f"COALESCE({self.text_is_key(self.quote(column.name))}, FALSE)"
        key = self.key_sql(column)
        if column.kind is ColumnKind.FLOAT:
            # Above 2**53 a float no longer holds every whole number: such a key is not exact, so not valid.
            return f"({key} >= 0 AND {key} < {FLOAT_KEY_LIMIT} AND {key} = FLOOR({key}))"
        whole = "" if column.is_integer_valued else f" AND {key} = FLOOR({key})"
        return f"({key} >= 0 AND {key} < {self.key_limit_literal}{whole})"

    def placeholder(self, name: str) -> str:
        """The dialect's marker for bound parameter ``name`` (positional ``?`` by default)."""
        return "?"

    @abstractmethod
    def _key_rows(self, sql: str, params: list[tuple[str, int]], obj: str) -> list[tuple[Any, ...]]:
        """Run a small read-only query binding ``params`` (in order, by name for named dialects)."""

    def key_filter(self, info: TableInfo, key_range: KeyRange) -> tuple[str, str, list[tuple[str, int]]]:
        """(WHERE condition, ORDER BY expression, parameters) of ``key_range`` on ``info``'s key column."""
        column = info.column(key_range.key)
        validate_identifier(self.name, column.name, "column")
        key = self.key_sql(column)
        where, params = key_range.where(key, self.valid_key_sql(column), self.placeholder)
        return where, key, params

    def duplicate_keys(self, table: str, key_range: KeyRange) -> list[int]:
        """Valid keys that occur more than once in ``key_range`` (a GROUP BY ... HAVING count(*) > 1)."""
        info = self.describe(table)
        where, _, params = self.key_filter(info, key_range)
        column = info.column(key_range.key)
        whole = self.integer_key_sql(column)
        rows = self._key_rows(
            f"SELECT {whole} FROM {self.table_sql(table)} WHERE {where} GROUP BY {whole} HAVING COUNT(*) > 1",
            params,
            f"table '{table}', key column '{column.name}'",
        )
        return [int(r[0]) for r in rows if r[0] is not None]

    def key_counts(self, table: str, key_range: KeyRange) -> tuple[int, int]:
        """(rows, distinct keys) of ``table`` with a valid key in ``key_range``: one aggregate in the warehouse.

        What a check compares with the store: only two numbers leave the warehouse, whatever the table's size.
        """
        info = self.describe(table)
        where, _, params = self.key_filter(info, key_range)
        whole = self.integer_key_sql(info.column(key_range.key))
        rows = self._key_rows(
            f"SELECT COUNT(*), COUNT(DISTINCT {whole}) FROM {self.table_sql(table)} WHERE {where}",
            params,
            f"table '{table}', key column '{info.column(key_range.key).name}'",
        )
        total, distinct = rows[0] if rows else (0, 0)
        return int(total or 0), int(distinct or 0)

    def key_bounds(self, table: str, key: str) -> tuple[int, int] | None:
        """The minimum and maximum valid key of ``table`` in one aggregate (None when it holds none)."""
        info = self.describe(table)
        column = info.column(key)
        validate_identifier(self.name, column.name, "column")
        whole = self.integer_key_sql(column)
        rows = self._key_rows(
            f"SELECT MIN({whole}), MAX({whole}) FROM {self.table_sql(table)} WHERE {self.valid_key_sql(column)}",
            [],
            f"table '{table}', key column '{column.name}'",
        )
        low, high = rows[0] if rows else (None, None)
        return None if high is None or low is None else (int(low), int(high))

    def occupied_ranges(self, table: str, key: str, span: int, *, after: int | None = None) -> list[int]:
        """The starts (multiples of ``span``) of the key ranges that hold valid keys above ``after``, ascending.

        One GROUP BY in the warehouse: time and memory grow with the number of ranges that hold rows,
        never with the distance between keys (a 33-digit outlier is not a valid key; sparse keys skip the
        empty ranges between them).
        """
        info = self.describe(table)
        where, _, params = self.key_filter(info, KeyRange(key, after=after))
        whole = self.integer_key_sql(info.column(key))
        start = f"{whole} - MOD({whole}, {int(span)})"
        rows = self._key_rows(
            f"SELECT {start} FROM {self.table_sql(table)} WHERE {where} GROUP BY {start} ORDER BY 1",
            params,
            f"table '{table}', key column '{info.column(key).name}'",
        )
        return [int(r[0]) for r in rows if r[0] is not None]

    @abstractmethod
    def table_sql(self, table: str) -> str:
        """The table's name as this dialect's SQL refers to it (qualified and quoted)."""

    # --- reading -------------------------------------------------------------------------
    @abstractmethod
    def describe(self, table: str) -> TableInfo:
        """Columns of ``table`` and whether it is a view; WarehouseError if it does not exist."""

    def read_batches(
        self,
        table: str,
        columns: Sequence[str],
        *,
        batch_size: int,
        key_range: KeyRange | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream ``columns`` of ``table`` as record batches of at most ``batch_size`` rows.

        Written once for every adapter: describe, select list, key filter and ORDER BY here; the
        adapter's :meth:`_arrow_stream` only runs the query and streams its Arrow result.

        Args:
            table: The table or view, as the section names it.
            columns: The columns to read; JSON-like columns (VARIANT, JSON, OBJECT, ARRAY, STRUCT)
                come back as JSON text.
            batch_size: The most rows one batch may hold.
            key_range: Only the rows whose key is in ``(after, through]`` (:meth:`key_filter`), in
                key order; None reads every row in no particular order.

        Yields:
            Record batches whose columns carry the names asked for.
        """
        info = self.describe(table)
        sql = f"SELECT {self.select_list(info, columns)} FROM {self.table_sql(table)}"
        params: list[tuple[str, int]] = []
        if key_range is not None:
            where, order, params = self.key_filter(info, key_range)
            sql += f" WHERE {where} ORDER BY {order}"
        yield from self._arrow_stream(sql, params, batch_size, ordered=key_range is not None, obj=f"table '{table}'")

    @abstractmethod
    def _arrow_stream(
        self, sql: str, params: list[tuple[str, int]], batch_size: int, *, ordered: bool, obj: str
    ) -> Iterator[pa.RecordBatch]:
        """Run the read query ``sql`` binding ``params`` and stream its result in batches of at most ``batch_size``.

        Args:
            sql: The SELECT :meth:`read_batches` built.
            params: (name, value) key parameters, in the order their markers appear.
            batch_size: The most rows one batch may hold.
            ordered: Whether the query has an ORDER BY the stream must keep (no parallel streams).
            obj: How error messages name what is read (``table 'x'``).
        """

    def max_key(self, table: str, key: str) -> int | None:
        """The current maximum of integer column ``key`` (None for an empty table)."""
        bounds = self.key_bounds(table, key)
        return None if bounds is None else bounds[1]

    @abstractmethod
    def query(self, sql: str, *, timeout_seconds: float | None = None, max_bytes_billed: int | None = None) -> pa.Table:
        """Run a read-only query and return its whole (small) result."""

    def changes_since(
        self, table: str, columns: Sequence[str], key: str, since: str | None
    ) -> ChangeSet | ChangesUnavailable:
        """Rows changed since ``since`` (an adapter-defined point), or why that is not possible.

        ``since=None`` asks only for a starting point: adapters that support change tracking
        return an empty ChangeSet whose ``until`` is "now".
        """
        return ChangesUnavailable(f"{self.kind} has no change tracking")

    def _query_timed_out(self, timeout_seconds: float | None) -> WarehouseError:
        """The error :meth:`query` raises, in every adapter, when the query runs past ``timeout_seconds``."""
        return WarehouseError(
            self.name,
            "query",
            f"timed out after {timeout_seconds} s",
            "simplify the query or raise timeout_seconds",
        )

    # --- writing -------------------------------------------------------------------------
    @abstractmethod
    def _merge(self, table: str, data: pa.Table, key: str, info: TableInfo) -> MergeResult:
        """Adapter-specific MERGE of ``data`` into ``table`` on ``key`` (target checked already)."""

    def merge_actions(self, values: dict[str, str], key: str) -> str:
        """The ``WHEN MATCHED ... WHEN NOT MATCHED ...`` clauses of a MERGE writing ``values``.

        Args:
            values: Target column name -> the SQL expression of its new value, in insert order.
            key: The key column (matched on, so never updated); when it is the only column, a match
                changes nothing and the UPDATE clause is left out.

        Returns:
            The clauses, ready to follow ``MERGE INTO ... ON ...``.
        """
        sets = ", ".join(f"{self.quote(c)} = {expr}" for c, expr in values.items() if c != key)
        matched = f"WHEN MATCHED THEN UPDATE SET {sets} " if sets else ""
        return (
            f"{matched}WHEN NOT MATCHED THEN INSERT ({', '.join(self.quote(c) for c in values)}) "
            f"VALUES ({', '.join(values.values())})"
        )

    def _writable_target(self, table: str, refused: str, fix: str) -> TableInfo:
        """``table`` described, or ReadOnlyTargetError (before any write) when it is a view."""
        info = self.describe(table)
        if info.is_view and not self.capabilities.views_writable:
            raise ReadOnlyTargetError(self.name, f"view '{table}'", f"views are read-only, so {refused}", fix)
        return info

    def merge(self, table: str, data: pa.Table, key: str, *, batch_size: int = 50_000) -> MergeResult:
        """Upsert ``data`` into ``table`` by ``key`` in batches (staging + MERGE).

        Raises ReadOnlyTargetError before any write when ``table`` is a view, and WarehouseError when
        a column of ``data`` is missing from the target.
        """
        info = self._writable_target(
            table, "records cannot be sent to it", "point the section at a table, or set its direction to 'receive'"
        )
        for name in data.column_names:
            info.column(name)
        inserted = updated = 0
        for start in range(0, max(data.num_rows, 1), batch_size):
            chunk = data.slice(start, batch_size)
            if chunk.num_rows == 0:
                break
            result = self._merge(table, chunk, key, info)
            inserted += result.inserted
            updated += result.updated
        return MergeResult(inserted, updated)

    def delete_keys(self, table: str, key: str, keys: Sequence[str], *, batch_size: int = 10_000) -> int:
        """Delete the rows of ``table`` whose ``key`` column is one of ``keys`` (exact text); returns how many went.

        Used by a send section with ``mirror: true`` for rows whose records left the store. Raises
        ReadOnlyTargetError before any write when ``table`` is a view.
        """
        info = self._writable_target(
            table, "rows cannot be deleted from it", "point the section at a table, or set 'mirror: false'"
        )
        column = info.column(key)
        return sum(
            self._delete_keys(table, column, list(keys[start : start + batch_size]))
            for start in range(0, len(keys), batch_size)
        )

    @abstractmethod
    def _delete_keys(self, table: str, column: Column, keys: list[str]) -> int:
        """Adapter-specific DELETE of the rows whose ``column`` is in ``keys`` (a view was refused already)."""

    # --- health ----------------------------------------------------------------------------
    @abstractmethod
    def probe(self) -> None:
        """A cheap real round trip (token refresh and a trivial query); raises CredentialsError."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
