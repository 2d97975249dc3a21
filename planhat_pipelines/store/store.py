"""The model store: one DuckDB file holding Planhat's models, usage time series and sync state.

Data goes in as Arrow and moves with set-based SQL. Sync cursors live in the same database, so a
caller that wraps data and cursor in :meth:`ModelStore.transaction` commits both or neither.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from planhat_pipelines.errors import PlanhatPipelinesError, TransientError
from planhat_pipelines.models import MODELS, ModelSpec
from planhat_pipelines.store.derived import refresh_company_fields
from planhat_pipelines.store.lock import SHELL_GRACE_S, lock_holder, lock_message
from planhat_pipelines.store.schema import migrate, q

#: The error of a sync-log row closed because its worker process died before it could finish the row.
DEAD_WORKER_ERROR = (
    "the worker died before the run finished (killed, out of memory or its node lost); the counts are what it "
    "committed. Fix: nothing to undo (every batch commits with its cursor); the next run resumes after it"
)

#: SQL for a new native id: 24 hex characters, like Planhat's ObjectIds.
NEW_ID_SQL = "substr(replace(CAST(gen_random_uuid() AS VARCHAR), '-', ''), 1, 24)"


@dataclass(frozen=True)
class UpsertCounts:
    """What an upsert did, by record."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: UpsertCounts) -> UpsertCounts:
        return UpsertCounts(
            self.inserted + other.inserted, self.updated + other.updated, self.unchanged + other.unchanged
        )


@dataclass(frozen=True)
class RunRecord:
    """One row of the sync log."""

    run_id: str
    section: str
    domain: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    rows_read: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    resolved_rejects: int
    sent: int
    cursor_before: str | None
    cursor_after: str | None
    error: str | None
    notes: str | None


class ModelStore:
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
        self.con.close()

    def __enter__(self) -> ModelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions ------------------------------------------------------------------------
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

    # --- models ------------------------------------------------------------------------------
    def upsert(
        self,
        model: ModelSpec | str,
        data: pa.Table | pa.RecordBatchReader | str,
        key: str,
        *,
        null_overwrites: bool = False,
    ) -> UpsertCounts:
        """Insert new and update changed records of ``model`` matched on ``key``.

        ``data`` holds ``key``, any standard fields, and optionally ``custom`` (a JSON object merged
        into the stored custom fields); it is Arrow, or the name of a table or view already in this
        store's connection (so a sync engine that staged its rows here upserts them in one pass). Keys
        must be unique and non-null (the sync engines reject bad keys before calling this). A null value
        leaves the stored value alone unless ``null_overwrites``. Unchanged records are not written.
        """
        spec = MODELS[model] if isinstance(model, str) else model
        table = q(spec.slug)
        with self.transaction() as con:
            if isinstance(data, str):
                source = data
                names = [d[0] for d in con.execute(f"SELECT * FROM {data} LIMIT 0").description]
            else:
                source = "__upsert_in"
                names = list(data.schema.names)
                con.register(source, data)
            fields = [n for n in names if n not in (key, "custom", "id")]
            try:
                casts = [f"CAST(s.{q(key)} AS VARCHAR) AS {q(key)}"]
                casts += [f"CAST(s.{q(n)} AS {self._type(spec, n)}) AS {q(n)}" for n in fields]
                if "custom" in names:
                    casts.append("CAST(s.custom AS JSON) AS custom")
                con.execute(f"CREATE OR REPLACE TEMP TABLE __upsert_src AS SELECT {', '.join(casts)} FROM {source} s")
            finally:
                if not isinstance(data, str):
                    con.unregister(source)

            def new_value(n: str) -> str:
                return f"s.{q(n)}" if null_overwrites else f"COALESCE(s.{q(n)}, t.{q(n)})"

            changed = [f"({new_value(n)} IS DISTINCT FROM t.{q(n)})" for n in fields]
            custom_new = "json_merge_patch(COALESCE(t.custom, '{}'), COALESCE(s.custom, '{}'))"
            if "custom" in names:
                changed.append(
                    f"(CAST({custom_new} AS VARCHAR) IS DISTINCT FROM CAST(COALESCE(t.custom, '{{}}') AS VARCHAR))"
                )
            changed_expr = " OR ".join(changed) or "FALSE"
            con.execute(
                "CREATE OR REPLACE TEMP TABLE __upsert_cls AS SELECT s.*, t.id AS __tid, "
                f"t.id IS NULL AS __new, t.id IS NOT NULL AND ({changed_expr}) AS __changed "
                f"FROM __upsert_src s LEFT JOIN {table} t ON t.{q(key)} = s.{q(key)}"
            )
            counts = con.execute(
                "SELECT count(*) FILTER (WHERE __new), count(*) FILTER (WHERE __changed), "
                "count(*) FILTER (WHERE NOT __new AND NOT __changed) FROM __upsert_cls"
            ).fetchall()[0]
            sets = [f"{q(n)} = {new_value(n)}" for n in fields]
            if "custom" in names:
                sets.append(f"custom = {custom_new}")
            sets.append("_updated_at = now()")
            if counts[1]:
                con.execute(
                    f"UPDATE {table} AS t SET {', '.join(sets)} FROM __upsert_cls AS s "
                    "WHERE s.__changed AND t.id = s.__tid"
                )
            if counts[0]:
                insert_cols = [key, *fields] + (["custom"] if "custom" in names else [])
                col_sql = ", ".join(q(c) for c in insert_cols)
                # custom goes through json_merge_patch so stored JSON is normalised like updates are.
                sel_sql = ", ".join(
                    "json_merge_patch('{}', COALESCE(s.custom, '{}'))" if c == "custom" else f"s.{q(c)}"
                    for c in insert_cols
                )
                con.execute(
                    f"INSERT INTO {table} (id, {col_sql}, _updated_at) "
                    f"SELECT {NEW_ID_SQL if key != 'id' else 's.id'}, {sel_sql}, now() FROM __upsert_cls s "
                    "WHERE s.__new"
                    if key != "id"
                    else f"INSERT INTO {table} ({col_sql}, _updated_at) SELECT {sel_sql}, now() "
                    "FROM __upsert_cls s WHERE s.__new"
                )
            con.execute("DROP TABLE __upsert_cls")
            con.execute("DROP TABLE __upsert_src")
        return UpsertCounts(int(counts[0]), int(counts[1]), int(counts[2]))

    @staticmethod
    def _type(spec: ModelSpec, name: str) -> str:
        field = spec.field(name)
        if field is None:
            raise PlanhatPipelinesError(f"{spec.name} has no standard field '{name}'")
        return field.type.duckdb_type

    def count(self, model: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {q(model)}").fetchall()[0][0])

    def usage_rows(self, section: str, table: str) -> int:
        """How many rows usage section ``section`` holds in ``table`` (``user_activities`` / ``custom_metrics``)."""
        return int(self.con.execute(f"SELECT count(*) FROM {q(table)} WHERE section = ?", [section]).fetchall()[0][0])

    def refresh_company_fields(self, today: date | None = None) -> int:
        """Recompute Company ARR/MRR, renewal date, customer from/to and status from licenses."""
        with self.transaction() as con:
            return refresh_company_fields(con, today or date.today())

    # --- cursors -----------------------------------------------------------------------------
    def get_cursor(self, section: str, scope: str = "") -> str | None:
        rows = self.con.execute(
            'SELECT "value" FROM sync_cursors WHERE section = ? AND scope = ?', [section, scope]
        ).fetchall()
        return rows[0][0] if rows else None

    def set_cursor(self, section: str, scope: str, value: str) -> None:
        """Move a cursor; call inside the same :meth:`transaction` as the data it covers."""
        self.con.execute(
            "INSERT INTO sync_cursors VALUES (?, ?, ?, now()) ON CONFLICT (section, scope) "
            'DO UPDATE SET "value" = excluded."value", updated_at = excluded.updated_at',
            [section, scope, value],
        )

    def cursors(self, section: str) -> dict[str, str]:
        rows = self.con.execute(
            'SELECT scope, "value" FROM sync_cursors WHERE section = ? ORDER BY scope', [section]
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    # --- sync log ------------------------------------------------------------------------------
    def start_run(
        self, section: str, domain: str, *, dagster_run_id: str | None = None, cursor_before: str | None = None
    ) -> str:
        """Open a sync-log row for a new run of ``section``, first closing the section's dead runs.

        Runs that write the store are serialised (one writer process holds the file; Dagster's store pool
        queues the rest), so a row of the same section still ``running`` when a new run starts belongs to a
        worker that died (SIGKILL, OOM, node loss): it is closed as ``failed`` with the counts its committed
        batches recorded (see :meth:`record_progress`).
        """
        self.close_dead_runs(section=section)
        run_id = uuid.uuid4().hex[:16]
        self.con.execute(
            "INSERT INTO sync_runs (run_id, section, domain, dagster_run_id, started_at, status, cursor_before) "
            "VALUES (?, ?, ?, ?, now(), 'running', ?)",
            [run_id, section, domain, dagster_run_id, cursor_before],
        )
        return run_id

    def close_dead_runs(self, *, section: str | None = None, dagster_run_id: str | None = None) -> int:
        """Close ``running`` sync-log rows whose worker died, as ``failed``; returns how many were closed.

        Args:
            section: Rows of this section (a new run of it is starting, so none of its rows can be live).
            dagster_run_id: Rows of this Dagster run (the run is known to have failed).
        """
        where, params = ["status = 'running'"], []
        if section is not None:
            where.append("section = ?")
            params.append(section)
        if dagster_run_id is not None:
            where.append("dagster_run_id = ?")
            params.append(dagster_run_id)
        rows = self.con.execute(
            f"UPDATE sync_runs SET status = 'failed', ended_at = now(), error = ? WHERE {' AND '.join(where)}",
            [DEAD_WORKER_ERROR, *params],
        ).fetchall()
        return int(rows[0][0])

    def record_progress(self, run_id: str, **counts: int | str | None) -> None:
        """Store a running run's counts so far; call inside the transaction of the batch they cover.

        A worker that dies later leaves exactly the counts of what it committed.
        """
        allowed = {"rows_read", "inserted", "updated", "unchanged", "rejected", "resolved_rejects", "sent"}
        allowed |= {"cursor_after"}
        unknown = set(counts) - allowed
        if unknown:
            raise ValueError(f"unknown sync_runs counters: {sorted(unknown)}")
        sets = ", ".join(f"{name} = ?" for name in counts)
        self.con.execute(f"UPDATE sync_runs SET {sets} WHERE run_id = ?", [*counts.values(), run_id])

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        rows_read: int = 0,
        inserted: int = 0,
        updated: int = 0,
        unchanged: int = 0,
        rejected: int = 0,
        resolved_rejects: int = 0,
        sent: int = 0,
        cursor_after: str | None = None,
        error: str | None = None,
        notes: str | None = None,
    ) -> None:
        self.con.execute(
            "UPDATE sync_runs SET ended_at = now(), status = ?, rows_read = ?, inserted = ?, updated = ?, "
            "unchanged = ?, rejected = ?, resolved_rejects = ?, sent = ?, cursor_after = ?, error = ?, notes = ? "
            "WHERE run_id = ?",
            [
                status,
                rows_read,
                inserted,
                updated,
                unchanged,
                rejected,
                resolved_rejects,
                sent,
                cursor_after,
                error,
                notes,
                run_id,
            ],
        )

    def runs(self, *, section: str | None = None, status: str | None = None, limit: int = 50) -> list[RunRecord]:
        where, params = ["TRUE"], []
        if section:
            where.append("section = ?")
            params.append(section)
        if status:
            where.append("status = ?")
            params.append(status)
        rows = self.con.execute(
            "SELECT run_id, section, domain, status, started_at, ended_at, rows_read, inserted, updated, unchanged, "
            "rejected, resolved_rejects, sent, cursor_before, cursor_after, error, notes FROM sync_runs "
            f"WHERE {' AND '.join(where)} ORDER BY started_at DESC LIMIT {int(limit)}",
            params,
        ).fetchall()
        return [RunRecord(*r) for r in rows]

    # --- rejected rows ---------------------------------------------------------------------------
    def record_rejects(
        self,
        section: str,
        run_id: str,
        rejects: pa.Table,
        *,
        resolve_others: bool,
        scope_keys: Sequence[str] | None = None,
    ) -> int:
        """Store this run's rejects, one record per source row, and mark earlier ones resolved.

        ``rejects`` has columns ``key`` and ``reason``, and optionally ``fingerprint`` (text telling apart
        rows that share a key, e.g. both copies of a duplicate key or several null-key rows; default: the
        reason), ``value`` (the offending value as text) and ``permanent`` (a reject no retry can fix). A row
        seen again with the same key and fingerprint updates its record instead of adding one.

        With ``resolve_others`` (a full read saw every source row), open rejects of the section that this
        run did not record again are marked resolved. Otherwise only those whose key is in ``scope_keys``
        (keys this run read) and that this run did not record again are. Returns how many were resolved.
        """
        con = self.con
        names = set(rejects.column_names)
        fingerprint = "CAST(fingerprint AS VARCHAR)" if "fingerprint" in names else "reason"
        value = 'CAST("value" AS VARCHAR)' if "value" in names else "NULL"
        permanent = "COALESCE(CAST(permanent AS BOOLEAN), false)" if "permanent" in names else "false"
        with self.transaction():
            con.register("__rejects_in", rejects)
            try:
                con.execute(
                    'INSERT INTO rejected_rows (section, "key", fingerprint, reason, "value", run_id, first_seen, '
                    f'last_seen, resolved_at, permanent) SELECT ?, CAST("key" AS VARCHAR), {fingerprint}, reason, '
                    f"{value}, ?, now(), now(), NULL, {permanent} FROM __rejects_in "
                    'ON CONFLICT (section, "key", fingerprint) DO UPDATE SET reason = excluded.reason, '
                    '"value" = excluded."value", run_id = excluded.run_id, last_seen = excluded.last_seen, '
                    "resolved_at = NULL, permanent = excluded.permanent",
                    [section, run_id],
                )
                if resolve_others:
                    resolved = self.resolve_rejects(section, run_id)
                elif scope_keys:
                    resolved = self.resolve_rejects(section, run_id, keys=scope_keys)
                else:
                    resolved = 0
            finally:
                con.unregister("__rejects_in")
        return resolved

    def known_rejects(self, section: str, rejects: pa.Table) -> int:
        """How many of ``rejects`` (columns ``key``, ``fingerprint``) are open records seen again, unchanged."""
        self.con.register("__rejects_known", rejects.select(["key", "fingerprint"]))
        try:
            rows = self.con.execute(
                'SELECT count(*) FROM __rejects_known r JOIN rejected_rows t ON t.section = ? AND t."key" = r."key" '
                "AND t.fingerprint = r.fingerprint AND t.resolved_at IS NULL",
                [section],
            ).fetchall()
        finally:
            self.con.unregister("__rejects_known")
        return int(rows[0][0])

    def resolve_rejects(
        self,
        section: str,
        run_id: str,
        *,
        keys: Sequence[str] | str | None = None,
        permanent: bool | None = None,
    ) -> int:
        """Mark resolved the open rejects of ``section`` that run ``run_id`` did not record again.

        Args:
            keys: Only these keys (a list, or the name of a one-column ``key`` table or view in this
                connection); None for every key.
            permanent: Only permanent (True) or only retryable (False) rejects; None for both.

        Returns:
            How many records were resolved.
        """
        sql = (
            "UPDATE rejected_rows SET resolved_at = now() WHERE section = ? AND resolved_at IS NULL "
            "AND run_id IS DISTINCT FROM ?"
        )
        params: list[object] = [section, run_id]
        if permanent is not None:
            sql += " AND permanent = ?"
            params.append(permanent)
        registered = False
        if isinstance(keys, str):
            sql += f' AND "key" IN (SELECT CAST("key" AS VARCHAR) FROM {keys})'
        elif keys is not None:
            self.con.register("__resolve_keys", pa.table({"key": pa.array(list(keys), pa.string())}))
            registered = True
            sql += ' AND "key" IN (SELECT "key" FROM __resolve_keys)'
        try:
            return int(self.con.execute(sql, params).fetchall()[0][0])
        finally:
            if registered:
                self.con.unregister("__resolve_keys")

    def open_rejects(self, section: str | None = None) -> list[tuple[str, str, str, str]]:
        """Unresolved rejects as (section, key, reason, run_id)."""
        sql = 'SELECT section, "key", reason, run_id FROM rejected_rows WHERE resolved_at IS NULL'
        params: list[str] = []
        if section:
            sql += " AND section = ?"
            params.append(section)
        return [tuple(r) for r in self.con.execute(sql + ' ORDER BY section, "key"', params).fetchall()]
