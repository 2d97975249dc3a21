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


@dataclass(frozen=True)
class KeyRange:
    """Rows whose integer key is in ``(after, through]``, read in key order.

    Attributes:
        key: The key column.
        after: Exclusive lower bound; None reads from the start.
        through: Inclusive upper bound; None reads to the end.
        null_keys: Instead, only the rows whose key is NULL (they belong to no range).
    """

    key: str
    after: int | None = None
    through: int | None = None
    null_keys: bool = False

    def where(
        self, key_sql: str, placeholder: Callable[[str], str] = lambda _name: "?"
    ) -> tuple[str, list[tuple[str, int]]]:
        """The SQL condition on the quoted key column and the (name, value) parameters it binds.

        ``placeholder`` turns a parameter name into the dialect's marker (``?``, ``@after``, ...).
        """
        if self.null_keys:
            return f"{key_sql} IS NULL", []
        conditions, params = ["TRUE"], []
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

    # --- reading -------------------------------------------------------------------------
    @abstractmethod
    def describe(self, table: str) -> TableInfo:
        """Columns of ``table`` and whether it is a view; WarehouseError if it does not exist."""

    @abstractmethod
    def read_batches(
        self,
        table: str,
        columns: Sequence[str],
        *,
        batch_size: int,
        key_range: KeyRange | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream ``columns`` of ``table`` as record batches of at most ``batch_size`` rows.

        With ``key_range``, only rows with ``after < key <= through``, in key order. JSON-like
        columns (VARIANT, JSON, OBJECT, ARRAY, STRUCT) come back as JSON text.
        """

    @abstractmethod
    def duplicate_keys(self, table: str, key_range: KeyRange) -> list[int]:
        """Keys that occur more than once in ``key_range`` (a GROUP BY ... HAVING count(*) > 1)."""

    @abstractmethod
    def key_bounds(self, table: str, key: str) -> tuple[int, int] | None:
        """The current minimum and maximum of integer column ``key`` in one aggregate (None when empty)."""

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

    # --- writing -------------------------------------------------------------------------
    @abstractmethod
    def _merge(self, table: str, data: pa.Table, key: str, info: TableInfo) -> MergeResult:
        """Adapter-specific MERGE of ``data`` into ``table`` on ``key`` (target checked already)."""

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
