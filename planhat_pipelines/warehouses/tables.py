"""Tables as the warehouses describe them: identifiers, column kinds, columns and table info."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from planhat_pipelines.errors import WarehouseError

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
