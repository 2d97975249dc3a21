"""Numeric usage keys: the valid-key bounds and the key ranges reads are cut into."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
