"""Keeping a DuckLake store fast and small: small files merged, old snapshots expired, unneeded files removed.

A usage section on a 5-minute cadence commits a few small batches every tick, and each commit is a snapshot
(small inserts stay inlined in the catalog until flushed). Left alone, a month of ticks is thousands of tiny
files and snapshots. :func:`maintain` runs DuckLake's own maintenance functions, in this order:

1. ``ducklake_flush_inlined_data``: inlined rows become Parquet files;
2. ``ducklake_merge_adjacent_files``: small adjacent files of a table become one;
3. ``ducklake_expire_snapshots``: snapshots older than ``retention_days`` go (time travel and ``history``
   reach back that far);
4. ``ducklake_cleanup_old_files``: files no kept snapshot needs are deleted once they have waited at least a
   day (:data:`CLEANUP_GRACE`: a reader that attached before the expiry may still be reading them).

Before those, change-log rows older than the store's ``change_log_days`` are deleted
(:meth:`ChangeLog.prune_change_log`), so the files they leave behind are merged and cleaned up in the same pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from planhat_pipelines.sql_quoting import quote_literal
from planhat_pipelines.store.location import CATALOG_ALIAS
from planhat_pipelines.store.store import ModelStore

#: Files scheduled for deletion are kept at least a day for readers still on an expired snapshot. Two days, not
#: one hour: DuckLake 1.5.5 (SQLite catalog) compares ``older_than`` by date, deleting every file scheduled on
#: or before that day, so ``now - 1 h`` deleted files scheduled seconds earlier. ``now - 2 days`` keeps each
#: file at least 24 h.
CLEANUP_GRACE = timedelta(days=2)
_METADATA = f"__ducklake_metadata_{CATALOG_ALIAS}"


@dataclass(frozen=True)
class MaintenanceReport:
    """What one maintenance pass did (Dagster shows it as the asset's metadata)."""

    data_files_before: int
    data_files_after: int
    snapshots_before: int
    snapshots_after: int
    files_merged_into: int
    snapshots_expired: int
    files_deleted: int
    change_log_rows_pruned: int = 0

    def metadata(self) -> dict[str, int]:
        return dict(self.__dict__)


def _count(store: ModelStore, sql: str) -> int:
    return int(store.con.execute(sql).fetchall()[0][0])


def _live_files(store: ModelStore) -> int:
    return _count(store, f"SELECT count(*) FROM {_METADATA}.ducklake_data_file WHERE end_snapshot IS NULL")


def _snapshots(store: ModelStore) -> int:
    return _count(store, f"SELECT count(*) FROM {CATALOG_ALIAS}.snapshots()")


def maintain(store: ModelStore, now: datetime | None = None) -> MaintenanceReport:
    """Prune the change log, flush inlined rows, merge small files, expire old snapshots, delete unneeded files.

    Each step is DuckLake's own transaction; one that loses a commit race with a sync is run again
    (:meth:`ModelStore.atomic`). Apart from the change log's old rows, rows are never changed: only how they
    are laid out.
    """
    now = now or datetime.now()
    alias = quote_literal(CATALOG_ALIAS)
    files_before, snapshots_before = _live_files(store), _snapshots(store)
    pruned = store.prune_change_log(now - timedelta(days=store.location.change_log_days))
    store.atomic(lambda: store.con.execute(f"CALL ducklake_flush_inlined_data({alias})").fetchall())
    merged = store.atomic(lambda: store.con.execute(f"CALL ducklake_merge_adjacent_files({alias})").fetchall())
    expire_before = now - timedelta(days=store.location.retention_days)
    expired = store.atomic(
        lambda: store.con.execute(
            f"CALL ducklake_expire_snapshots({alias}, older_than => CAST(? AS TIMESTAMP))", [expire_before]
        ).fetchall()
    )
    deleted = store.atomic(
        lambda: store.con.execute(
            f"CALL ducklake_cleanup_old_files({alias}, older_than => CAST(? AS TIMESTAMP))", [now - CLEANUP_GRACE]
        ).fetchall()
    )
    return MaintenanceReport(
        files_before,
        _live_files(store),
        snapshots_before,
        _snapshots(store),
        len(merged),
        len(expired),
        len(deleted),
        pruned,
    )
