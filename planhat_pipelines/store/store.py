"""The model store: one DuckLake holding Planhat's models, usage time series and sync state.

Data goes in as Arrow and moves with set-based SQL. Sync cursors live in the same DuckLake, so a caller
that wraps data and cursor in :meth:`ModelStore.atomic` commits both or neither; many processes read and
write it at once (see ``location.py`` for the catalogs, ``transactions.py`` for commit races).

The parts live beside this module: the upsert steps in ``upsert.py``, cursors in ``cursors.py``, the sync
log in ``sync_log.py``, rejected rows in ``rejects.py``, the connection health log in ``health.py``, OKR values
in ``okr_values.py``, the asset checks' queries in ``checks.py`` and transactions in ``transactions.py``;
:class:`ModelStore` composes them, so callers use one object and never write SQL of their own on the store's
tables (the sync engines' set-based SQL over their own temp tables stays with the engines, and the behaviours'
and calculated metrics' SQL stays beside their rules in ``behaviours/`` and ``metrics/``, as ``derived.py``'s does).
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
from planhat_pipelines.store.change_log import ChangeLog, LogContext
from planhat_pipelines.store.checks import StoreChecks
from planhat_pipelines.store.company_daily import record_company_day
from planhat_pipelines.store.cursors import Cursors
from planhat_pipelines.store.customer_numbers import CustomerNumberReads
from planhat_pipelines.store.derived import refresh_company_fields
from planhat_pipelines.store.extensions import connect_with_extensions
from planhat_pipelines.store.health import HealthLog
from planhat_pipelines.store.history import History
from planhat_pipelines.store.legacy import refuse_single_file_store
from planhat_pipelines.store.location import CATALOG_ALIAS, StoreLocation
from planhat_pipelines.store.lock import SHELL_GRACE_S, lock_holder, lock_message
from planhat_pipelines.store.okr_values import OkrValues
from planhat_pipelines.store.rejects import Rejects
from planhat_pipelines.store.schema import migrate
from planhat_pipelines.store.source_columns import SourceColumns
from planhat_pipelines.store.sync_log import DEAD_WORKER_ERROR, RunRecord, SyncLog
from planhat_pipelines.store.upsert import NEW_ID_SQL, UpsertCounts, UpsertPlan

__all__ = ["DEAD_WORKER_ERROR", "NEW_ID_SQL", "ModelStore", "RunRecord", "UpsertCounts"]


class ModelStore(
    Cursors, SyncLog, Rejects, HealthLog, OkrValues, StoreChecks, History, CustomerNumberReads, ChangeLog, SourceColumns
):
    """The model store: a DuckLake attached to an in-memory DuckDB connection as ``store``.

    Args:
        location: The catalog and data path (a bare path is a file catalog, see :meth:`StoreLocation.of_file`).
        lock_timeout: Seconds to wait for a DuckDB-file catalog another process holds (a Dagster process gets
            the whole wait, a person's shell a few seconds' grace). SQLite and PostgreSQL catalogs do not lock.
        read_only: Attach for reading only: the catalog must exist, nothing is created or migrated, and the
            connection sees the last committed snapshot while others write.
    """

    def __init__(
        self, location: StoreLocation | str | Path, *, lock_timeout: float = 30.0, read_only: bool = False
    ) -> None:
        """Attach (and, unless ``read_only``, create and migrate) the store.

        Raises:
            PlanhatPipelinesError: ``read_only`` and there is no store yet, the catalog is a single-file store
                of an earlier release, or a DuckDB-file catalog stays locked.
        """
        self.location = location if isinstance(location, StoreLocation) else StoreLocation.of_file(location)
        self.read_only = read_only
        if read_only and not self.location.exists():
            raise PlanhatPipelinesError(f"no store yet at {self.location.catalog}: run a sync first (make demo)")
        refuse_single_file_store(self.location)
        if not read_only:
            self.location.prepare()
        self.con = connect_with_extensions(*self.location.extensions())
        self._depth = 0
        self.commit_retry_seconds = lock_timeout
        try:
            # DuckDB 1.5.5 pushes a join's keys into a DuckLake scan as a bloom filter that DuckLake cannot
            # apply ("Can't convert TableFilterType (BLOOM_FILTER)"), failing anti-joins and semi-joins with
            # store tables. Without that one optimisation the joins run; the key-range filters still prune files.
            self.con.execute("SET disabled_optimizers = 'join_filter_pushdown'")
            self._attach(lock_timeout)
            if not read_only:
                self.atomic(lambda: migrate(self.con))
        except BaseException:
            self.con.close()
            raise

    @property
    def path(self) -> Path | str:
        """The catalog file (or the PostgreSQL catalog's address), for messages."""
        return self.location.catalog or self.location.describe()

    def _attach(self, lock_timeout: float) -> None:
        """Attach the DuckLake as ``store`` and make it the default catalog.

        A DuckDB-file catalog is locked by the process that has it open: wait up to ``lock_timeout`` s for a
        Dagster process (a run, a sensor tick), up to :data:`SHELL_GRACE_S` for anything else (a person's
        shell does not let go by itself). A SQLite catalog busy with another writer's commit is retried too.
        """
        sql = self.location.attach_sql(read_only=self.read_only)
        started = time.monotonic()
        delay = 0.05
        while True:
            try:
                self.con.execute(sql)
                break
            except duckdb.Error as exc:
                text = str(exc).lower()
                busy = "database is locked" in text
                if not busy and "lock" not in text:
                    raise PlanhatPipelinesError(
                        f"model store {self.location.describe()} cannot be opened ({exc}). "
                        "Fix: check the catalog and the data path (and their permissions)"
                    ) from exc
                holder = lock_holder(str(exc))
                limit = lock_timeout if busy or holder.waits_by_itself else min(lock_timeout, SHELL_GRACE_S)
                if time.monotonic() + delay > started + limit:
                    # Another run lets go by itself, so a later attempt can succeed (transient: the step retries);
                    # a person's shell does not, and the message says to close it.
                    error = TransientError if busy or holder.waits_by_itself else PlanhatPipelinesError
                    raise error(lock_message(Path(str(self.path)), holder, exc)) from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        self.con.execute(f"USE {CATALOG_ALIAS}")

    def close(self) -> None:
        """Close the connection (detaching the DuckLake; everything committed is already in it)."""
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
        if isinstance(table, pa.RecordBatchReader):
            table = table.read_all()  # a retried commit reads it again: a reader reads once

        def upsert() -> UpsertCounts:
            self.con.register("__upsert_in", table)
            try:
                _upsert.cast_source(self.con, plan, "__upsert_in")
            finally:
                self.con.unregister("__upsert_in")
            return _upsert.apply(self.con, plan)

        return self.atomic(upsert)

    def upsert_staged(
        self,
        model: ModelSpec | str,
        relation_name: str,
        key: str,
        *,
        null_overwrites: bool = False,
        log: LogContext | None = None,
    ) -> UpsertCounts:
        """Like :meth:`upsert_arrow`, from a table or view already in this store's connection.

        A sync engine that staged its rows here (e.g. ``__crm_ok``) upserts them in one pass, with no
        Arrow round trip. With ``log``, every inserted and updated record is recorded in the change log.
        """
        spec = MODELS[model] if isinstance(model, str) else model
        names = [d[0] for d in self.con.execute(f"SELECT * FROM {relation_name} LIMIT 0").description]
        plan = UpsertPlan.of(spec, names, key, null_overwrites=null_overwrites)

        def upsert() -> UpsertCounts:
            _upsert.cast_source(self.con, plan, relation_name)
            return _upsert.apply(self.con, plan, log)

        return self.atomic(upsert)

    def count(self, model: str) -> int:
        """How many records model table ``model`` holds."""
        return int(self.con.execute(f"SELECT count(*) FROM {q(model)}").fetchall()[0][0])

    def usage_rows(self, section: str, table: str) -> int:
        """How many rows usage section ``section`` holds in ``table`` (``user_activities`` / ``custom_metrics``)."""
        return int(self.con.execute(f"SELECT count(*) FROM {q(table)} WHERE section = ?", [section]).fetchall()[0][0])

    def highest_usage_key(self, section: str, table: str, after: int, through: int | None) -> int | None:
        """The highest key usage section ``section`` holds in ``table`` within ``(after, through]`` (None: none).

        One aggregate; DuckLake skips every data file whose key statistics lie outside the range.
        """
        sql = f'SELECT max("key") FROM {q(table)} WHERE section = ? AND "key" > CAST(? AS HUGEINT)'
        params: list[object] = [section, str(after)]
        if through is not None:
            sql += ' AND "key" <= CAST(? AS HUGEINT)'
            params.append(str(through))
        top = self.con.execute(sql, params).fetchall()[0][0]
        return None if top is None else int(top)

    def refresh_company_fields(self, today: date | None = None) -> int:
        """Recompute Company ARR/MRR, renewal date, customer from/to and status from licenses, and write the
        day's row of each company's daily series (``company_daily``) in the same transaction."""
        day = today or date.today()

        def refresh() -> int:
            changed = refresh_company_fields(self.con, day)
            record_company_day(self.con, day)
            return changed

        return self.atomic(refresh)
