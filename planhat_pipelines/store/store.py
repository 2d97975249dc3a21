"""The model store: one DuckDB file holding Planhat's models, usage time series and sync state.

Data goes in as Arrow and moves with set-based SQL. Sync cursors live in the same database, so a
caller that wraps data and cursor in :meth:`ModelStore.transaction` commits both or neither.

The parts live beside this module: the upsert steps in ``upsert.py``, cursors in ``cursors.py``, the sync
log in ``sync_log.py``, rejected rows in ``rejects.py``, the connection health log in ``health.py``, OKR values
in ``okr_values.py``, the asset checks' queries in ``checks.py`` and transactions in ``transactions.py``;
:class:`ModelStore` composes them, so callers use one object and never write SQL of their own on the store's
tables (the sync engines' set-based SQL over their own temp tables stays with the engines).
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from planhat_pipelines.errors import PlanhatPipelinesError, TransientError
from planhat_pipelines.models import MODELS, ModelSpec
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.store import upsert as _upsert
from planhat_pipelines.store.checks import StoreChecks
from planhat_pipelines.store.cursors import Cursors
from planhat_pipelines.store.derived import refresh_company_fields
from planhat_pipelines.store.health import HealthLog
from planhat_pipelines.store.lock import SHELL_GRACE_S, lock_holder, lock_message
from planhat_pipelines.store.okr_values import OkrValues
from planhat_pipelines.store.rejects import Rejects
from planhat_pipelines.store.schema import migrate
from planhat_pipelines.store.sync_log import DEAD_WORKER_ERROR, RunRecord, SyncLog
from planhat_pipelines.store.upsert import NEW_ID_SQL, UpsertCounts, UpsertPlan

__all__ = ["DEAD_WORKER_ERROR", "NEW_ID_SQL", "ModelStore", "RunRecord", "UpsertCounts"]


class ModelStore(Cursors, SyncLog, Rejects, HealthLog, OkrValues, StoreChecks):
    """The DuckDB model store.

    Args:
        path: The database file (created with its parent folder if missing).
    """

    def __init__(self, path: str | Path, *, lock_timeout: float = 30.0, read_only: bool = False) -> None:
        """Open (and, unless ``read_only``, create and migrate) the store.

        Args:
            path: The database file.
            lock_timeout: Seconds to wait while a Dagster process holds the file (a person's shell gets
                a few seconds' grace, then the error says to close it).
            read_only: Open for reading only: the file must exist, nothing is created or migrated, and
                other readers can have it open at the same time.

        Raises:
            PlanhatPipelinesError: ``read_only`` and the file does not exist, or the file stays locked.
        """
        self.path = Path(path)
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise PlanhatPipelinesError(f"no store yet at {self.path}: run a sync first (make demo)")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = self._connect(lock_timeout)
        self._depth = 0
        if read_only:
            return
        # Sync commits every batch; checkpointing the WAL into the file at DuckDB's default 16 MB would
        # rewrite the tables every few batches. Checkpoint at 256 MB of WAL (and on close) instead.
        self.con.execute("SET checkpoint_threshold = '256MB'")
        migrate(self.con)

    def _connect(self, lock_timeout: float) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting while another process holds it: up to ``lock_timeout`` s for a Dagster process
        (a run, a sensor tick), up to :data:`SHELL_GRACE_S` for anything else (a person's shell does not let go
        by itself, so a long wait only delays the message that says to close it)."""
        started = time.monotonic()
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=self.read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise PlanhatPipelinesError(
                        f"model store '{self.path}' cannot be opened ({exc}). Fix: check the file and its folder"
                    ) from exc
                holder = lock_holder(str(exc))
                limit = lock_timeout if holder.waits_by_itself else min(lock_timeout, SHELL_GRACE_S)
                if time.monotonic() + delay > started + limit:
                    # Another run lets go by itself, so a later attempt can succeed (transient: the step retries);
                    # a person's shell does not, and the message says to close it.
                    error = TransientError if holder.waits_by_itself else PlanhatPipelinesError
                    raise error(lock_message(self.path, holder, exc)) from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def close(self) -> None:
        """Close the connection (DuckDB checkpoints the WAL into the file)."""
        self.con.close()

    def __enter__(self) -> ModelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- models ------------------------------------------------------------------------------
    def upsert_arrow(
        self,
        model: ModelSpec | str,
        table: pa.Table | pa.RecordBatchReader,
        key: str,
        *,
        null_overwrites: bool = False,
    ) -> UpsertCounts:
        """Insert new and update changed records of ``model`` matched on ``key``, from Arrow.

        ``table`` holds ``key``, any standard fields, and optionally ``custom`` (a JSON object merged
        into the stored custom fields). Keys must be unique and non-null (the sync engines reject bad
        keys before calling this). A null value leaves the stored value alone unless ``null_overwrites``.
        Unchanged records are not written.

        Raises:
            TypeError: ``table`` is a relation name (use :meth:`upsert_staged`).
            PlanhatPipelinesError: A column is not a standard field of the model.
        """
        if isinstance(table, str):
            raise TypeError(f"upsert_arrow takes Arrow data, not the relation name '{table}': use upsert_staged")
        spec = MODELS[model] if isinstance(model, str) else model
        plan = UpsertPlan.of(spec, table.schema.names, key, null_overwrites=null_overwrites)
        with self.transaction() as con:
            con.register("__upsert_in", table)
            try:
                _upsert.cast_source(con, plan, "__upsert_in")
            finally:
                con.unregister("__upsert_in")
            return _upsert.apply(con, plan)

    def upsert_staged(
        self, model: ModelSpec | str, relation_name: str, key: str, *, null_overwrites: bool = False
    ) -> UpsertCounts:
        """Like :meth:`upsert_arrow`, from a table or view already in this store's connection.

        A sync engine that staged its rows here (e.g. ``__crm_ok``) upserts them in one pass, with no
        Arrow round trip.
        """
        spec = MODELS[model] if isinstance(model, str) else model
        with self.transaction() as con:
            names = [d[0] for d in con.execute(f"SELECT * FROM {relation_name} LIMIT 0").description]
            plan = UpsertPlan.of(spec, names, key, null_overwrites=null_overwrites)
            _upsert.cast_source(con, plan, relation_name)
            return _upsert.apply(con, plan)

    def count(self, model: str) -> int:
        """How many records model table ``model`` holds."""
        return int(self.con.execute(f"SELECT count(*) FROM {q(model)}").fetchall()[0][0])

    def usage_rows(self, section: str, table: str) -> int:
        """How many rows usage section ``section`` holds in ``table`` (``user_activities`` / ``custom_metrics``)."""
        return int(self.con.execute(f"SELECT count(*) FROM {q(table)} WHERE section = ?", [section]).fetchall()[0][0])

    def refresh_company_fields(self, today: date | None = None) -> int:
        """Recompute Company ARR/MRR, renewal date, customer from/to and status from licenses."""
        with self.transaction() as con:
            return refresh_company_fields(con, today or date.today())
