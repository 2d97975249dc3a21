"""The store's connection and its transactions, the base every part of :class:`ModelStore` builds on.

DuckLake has no locks to wait on: two writers that commit at once may find the catalog busy (SQLite:
"database is locked") or each other's snapshot newer (a conflict). Either way the failed transaction rolled
back whole, so :meth:`Transactional.atomic` runs it again from the start, a few times with growing waits.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import duckdb

from planhat_pipelines.errors import TransientError

T = TypeVar("T")

#: The first wait before a transaction that lost a commit race runs again (it doubles, up to 2 s).
FIRST_RETRY_WAIT_S = 0.05
#: Words in DuckDB's errors for a commit another writer got in the way of.
_RETRYABLE = ("failed to commit ducklake transaction", "database is locked", "transaction conflict")


def lost_commit_race(exc: BaseException) -> bool:
    """Whether ``exc`` is a commit that failed only because another writer committed at the same time."""
    return isinstance(exc, duckdb.Error) and any(word in str(exc).lower() for word in _RETRYABLE)


class Transactional:
    """A DuckDB connection whose writes group into (nestable) transactions.

    Subclasses set ``con`` and ``_depth`` when they open the connection.
    """

    con: duckdb.DuckDBPyConnection
    _depth: int
    #: How long :meth:`atomic` keeps retrying a commit that lost a race (the store sets its lock timeout).
    commit_retry_seconds: float = 30.0

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All writes inside commit together or not at all; nested calls join the outer one.

        A commit that loses a race with another writer raises; use :meth:`atomic` to run the work again.
        """
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
            self._rollback()
            raise
        else:
            try:
                self.con.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        finally:
            self._depth = 0

    @contextmanager
    def rolled_back(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Everything inside sees its own writes, and all of them are rolled back at the end: a preview.

        Every :meth:`transaction` and :meth:`atomic` inside joins this one, so a sync run inside reads and
        writes exactly as it would (its row hashes, cursors, rejects and sync log included) and leaves the
        store as it was. Nothing is committed, so no other process ever sees any of it.
        """
        if self._depth:
            raise RuntimeError("a preview cannot run inside another transaction (it would roll that back too)")
        self.con.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield self.con
        finally:
            self._depth = 0
            self._rollback()

    def atomic(self, work: Callable[[], T]) -> T:
        """Run ``work`` in one transaction; if its commit loses a race with another writer, run it again.

        ``work`` must be safe to run again from the start (it re-reads what it writes from the store, and
        keeps its effects outside the store until it returns). Inside an outer transaction it simply joins
        it (the outer one is the unit that is retried). Races are retried, with growing waits, for the
        store's ``commit_retry_seconds`` (its lock timeout: about a second for a sensor, 30 s for a run).

        Raises:
            TransientError: the commit still lost when the time was up (Dagster's retry policy runs the
                step again later).
        """
        if self._depth:
            return work()
        deadline = time.monotonic() + self.commit_retry_seconds
        wait = FIRST_RETRY_WAIT_S
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.transaction():
                    return work()
            except duckdb.Error as exc:
                if not lost_commit_race(exc):
                    raise
                if time.monotonic() + wait > deadline:
                    raise TransientError(
                        f"the store's commit lost {attempt} race(s) with other writers in "
                        f"{self.commit_retry_seconds:g} s ({str(exc).splitlines()[0]}). Fix: nothing to change; "
                        "the step is retried. If it keeps happening, fewer runs at once "
                        "(concurrency.runs.max_concurrent_runs in dagster.yaml) gives each more room"
                    ) from exc
                time.sleep(wait * (1 + random.random()))
                wait = min(wait * 2, 2.0)

    def write(self, sql: str, params: list[object] | None = None) -> list[tuple[Any, ...]]:
        """One writing statement on its own (or in the caller's transaction), retried like :meth:`atomic`."""
        return self.atomic(lambda: self.con.execute(sql, params or []).fetchall())

    def _rollback(self) -> None:
        # A failed COMMIT has already rolled back: then there is no transaction left to end.
        with contextlib.suppress(duckdb.Error):
            self.con.execute("ROLLBACK")
