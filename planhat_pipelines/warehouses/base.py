"""The one warehouse interface every adapter (DuckDB, BigQuery, Snowflake) implements.

Callers never branch on the warehouse type: they read ``capabilities``. Identifiers that come
from the config go through :func:`validate_identifier` and are quoted by the adapter; values are
always bound parameters.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pyarrow as pa

from planhat_pipelines.errors import ReadOnlyTargetError, WarehouseError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")


def validate_identifier(connection: str, name: str, what: str = "identifier") -> str:
    """Return ``name`` if it is a plain SQL identifier (letters, digits, _ and $), else raise.

    Table names may be qualified once or twice with dots (``dataset.table``); each part is checked.
    """
    parts = name.split(".")
    if not 1 <= len(parts) <= 3 or not all(_IDENTIFIER.match(p) for p in parts):
        raise WarehouseError(
            connection,
            f"{what} '{name}'",
            "is not a plain identifier",
            "use letters, digits, '_' or '$' (optionally qualified with dots), or create a view with that name",
        )
    return name


class ColumnKind(Enum):
    """A warehouse column type, reduced to what the syncs need to know."""

    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp"
    JSON = "json"
    OTHER = "other"


@dataclass(frozen=True)
class Column:
    """A column as the warehouse describes it.

    Attributes:
        name: Column name as stored.
        type: The warehouse's own type text (e.g. ``NUMBER(38,0)``, ``INT64``).
        kind: The reduced kind.
        scale: Decimal scale where known (0 for integer-valued decimals).
    """

    name: str
    type: str
    kind: ColumnKind
    scale: int | None = None

    @property
    def is_integer_valued(self) -> bool:
        return self.kind is ColumnKind.INTEGER or (self.kind is ColumnKind.DECIMAL and self.scale == 0)


@dataclass(frozen=True)
class TableInfo:
    """A table or view as the warehouse describes it."""

    connection: str
    name: str
    columns: tuple[Column, ...]
    is_view: bool

    def column(self, name: str) -> Column:
        """The column called ``name`` (case-insensitive); raises WarehouseError naming the choices."""
        for col in self.columns:
            if col.name == name or col.name.lower() == name.lower():
                return col
        raise WarehouseError(
            self.connection,
            f"{'view' if self.is_view else 'table'} '{self.name}'",
            f"has no column '{name}'",
            f"use one of: {', '.join(c.name for c in self.columns)}",
        )


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can do; callers decide on these flags, never on the adapter's type.

    Attributes:
        views_writable: Whether a view can be a write target (no warehouse here allows it).
        change_tracking: Whether :meth:`Warehouse.changes_since` can return partial change sets.
        fast_arrow_reads: Whether reads stream Arrow natively (Storage API, fetch_arrow_batches).
        dialect: The sqlglot dialect name used to check SQL for this warehouse.
    """

    views_writable: bool = False
    change_tracking: bool = False
    fast_arrow_reads: bool = True
    dialect: str = "duckdb"


#: Usage keys are at most 32 digits: whole numbers ``0 <= key < 10**32`` are valid keys.
KEY_DIGITS = 32
KEY_LIMIT = 10**KEY_DIGITS
#: Float key columns hold whole numbers exactly only below 2**53.
FLOAT_KEY_LIMIT = 2**53


@dataclass(frozen=True)
class KeyRange:
    """Rows whose numeric key is in ``(after, through]`` (open below, closed above), read in key order.

    Only valid keys (whole numbers ``0 <= key < 10**32``) are ever in a range; a text key column is read
    through the warehouse's safe cast to a number (:meth:`Warehouse.key_sql`).

    Attributes:
        key: The key column.
        after: Exclusive lower bound; None reads from the start.
        through: Inclusive upper bound; None reads to the end.
        keys: Instead of bounds, exactly these keys (a bounded list: callers batch them).
        invalid_keys: Instead, only the rows whose key is not a valid key (NULL, negative, fractional,
            non-finite, longer than 32 digits, or text that is not a number): they belong to no range.
    """

    key: str
    after: int | None = None
    through: int | None = None
    keys: tuple[int, ...] | None = None
    invalid_keys: bool = False

    def where(
        self, key_sql: str, valid_sql: str, placeholder: Callable[[str], str] = lambda _name: "?"
    ) -> tuple[str, list[tuple[str, int]]]:
        """The SQL condition on the key expression and the (name, value) parameters it binds, in order.

        Args:
            key_sql: The key as a number (:meth:`Warehouse.key_sql`).
            valid_sql: The condition that the key is valid (:meth:`Warehouse.valid_key_sql`).
            placeholder: Turns a parameter name into the dialect's marker (``?``, ``@after``, ...).
        """
        if self.invalid_keys:
            return f"NOT COALESCE({valid_sql}, FALSE)", []
        conditions, params = [valid_sql], []
        if self.keys is not None:
            names = [f"k{i}" for i in range(len(self.keys))]
            markers = ", ".join(placeholder(n) for n in names) or "NULL"
            conditions.append(f"{key_sql} IN ({markers})")
            params += list(zip(names, self.keys, strict=True))
        if self.after is not None:
            conditions.append(f"{key_sql} > {placeholder('after')}")
            params.append(("after", self.after))
        if self.through is not None:
            conditions.append(f"{key_sql} <= {placeholder('through')}")
            params.append(("through", self.through))
        return " AND ".join(conditions), params


@dataclass(frozen=True)
class MergeResult:
    """What a merge wrote."""

    inserted: int
    updated: int


@dataclass(frozen=True)
class ChangeSet:
    """Rows changed since a point, as a change-tracking warehouse reports them.

    Attributes:
        rows: Changed rows (inserts and updates), selected columns only.
        deleted_keys: Keys of deleted rows.
        until: The point to pass as ``since`` next time.
    """

    rows: pa.Table
    deleted_keys: pa.Array
    until: str


@dataclass(frozen=True)
class ChangesUnavailable:
    """Why a partial read is not possible, so the caller falls back to a full read."""

    reason: str


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

    def merge(self, table: str, data: pa.Table, key: str, *, batch_size: int = 50_000) -> MergeResult:
        """Upsert ``data`` into ``table`` by ``key`` in batches (staging + MERGE).

        Raises ReadOnlyTargetError before any write when ``table`` is a view, and WarehouseError when
        a column of ``data`` is missing from the target.
        """
        info = self.describe(table)
        if info.is_view and not self.capabilities.views_writable:
            raise ReadOnlyTargetError(
                self.name,
                f"view '{table}'",
                "views are read-only, so records cannot be sent to it",
                "point the section at a table, or set its direction to 'receive'",
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
