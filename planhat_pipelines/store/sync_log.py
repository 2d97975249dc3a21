"""The sync log: one ``sync_runs`` row per run of a section, with its counts, cursors and error."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from planhat_pipelines.store.transactions import Transactional

#: The error of a sync-log row closed because its worker process died before it could finish the row.
DEAD_WORKER_ERROR = (
    "the worker died before the run finished (killed, out of memory or its node lost); the counts are what it "
    "committed. Fix: nothing to undo (every batch commits with its cursor); the next run resumes after it"
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


class SyncLog(Transactional):
    """The ``sync_runs`` table: open, update and close a run's row; read the log."""

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
        self.write(
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
        rows = self.write(
            f"UPDATE sync_runs SET status = 'failed', ended_at = now(), error = ? WHERE {' AND '.join(where)}",
            [DEAD_WORKER_ERROR, *params],
        )
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
        self.write(f"UPDATE sync_runs SET {sets} WHERE run_id = ?", [*counts.values(), run_id])

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
        """Close run ``run_id`` with ``status`` (``success`` / ``failed`` / ...) and its final counts."""
        self.write(
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
        """The latest ``limit`` sync-log rows, newest first, optionally of one section and/or status."""
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
