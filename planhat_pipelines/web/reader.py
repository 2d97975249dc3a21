"""How the web app reads the store: one read-only attachment, one cursor per request.

A DuckLake attached read-only sees each committed snapshot as soon as a new transaction starts, so a page shows the
last committed state while syncs write, and never waits for them (the SQLite catalog is in WAL mode; PostgreSQL
readers never wait). Each request gets its own cursor on the shared attachment: DuckDB cursors run concurrently and
share the attachment's settings.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore, StoreLocation
from planhat_pipelines.store.location import CATALOG_ALIAS
from planhat_pipelines.store.schema import missing_tables


class StoreReader:
    """A read-only store shared by the app's requests.

    Args:
        location: The store the config names.

    Raises:
        PlanhatPipelinesError: The catalog is a DuckDB file (one process locks it: serving it would block every
            sync). At the first request: there is no store yet, or an earlier release's store no sync has upgraded.
    """

    def __init__(self, location: StoreLocation) -> None:
        if location.kind == "duckdb":
            raise PlanhatPipelinesError(
                f"store.catalog {location.describe()} is a DuckDB-file catalog, which one process locks at a time: the "
                "web app would block every sync while it runs. Fix: use a SQLite catalog (store.catalog: "
                "<path>.sqlite, the default) or a PostgreSQL one (store.postgres)"
            )
        self.location = location
        self._store: ModelStore | None = None
        self._lock = threading.Lock()

    def _attached(self) -> ModelStore:
        # Attached on first use, not at start: `serve` may start before the first sync has created the store.
        with self._lock:
            if self._store is None:
                store = ModelStore(self.location, read_only=True)
                missing = missing_tables(store.con)
                if missing:
                    store.close()
                    raise PlanhatPipelinesError(
                        f"the store {self.location.describe()} was written by an earlier release (no "
                        f"{', '.join(missing)} yet) and a reader cannot upgrade it. Fix: run any sync once "
                        "(`make demo`, or one asset in the Dagster UI); its first transaction adds the tables"
                    )
                self._store = store
            return self._store

    @contextmanager
    def view(self) -> Iterator[ModelStore]:
        """A read-only :class:`ModelStore` on its own cursor, for one request (closed after it).

        The request's reads run in one transaction: every part of a page shows the same snapshot (a sync that
        commits halfway through a page cannot make its totals and its table disagree), and DuckLake looks the
        snapshot's catalog up once instead of once per query (~40 ms each on a SQLite catalog).
        """
        shared = self._attached()
        with self._lock:
            cursor = shared.con.cursor()
        try:
            cursor.execute(f"USE {CATALOG_ALIAS}")
            cursor.execute("BEGIN TRANSACTION")
            view = copy.copy(shared)
            view.con = cursor
            view._depth = 1  # already in a transaction: the store's own atomic() nests instead of beginning one
            yield view
        finally:
            cursor.close()  # ends the read transaction (nothing was written)

    def close(self) -> None:
        """Detach the store (at server shutdown)."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
