"""The store's connection and its transactions, the base every part of :class:`ModelStore` builds on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb


class Transactional:
    """A DuckDB connection whose writes group into (nestable) transactions.

    Subclasses set ``con`` and ``_depth`` when they open the connection.
    """

    con: duckdb.DuckDBPyConnection
    _depth: int

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All writes inside commit together or not at all; nested calls join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self.con
            finally:
                self._depth -= 1
            return
        self.con.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")
        finally:
            self._depth = 0
