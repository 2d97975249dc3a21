"""The CRM receive's read plan: a partial read since the change-tracking cursor, or the whole table.

Where a warehouse offers change tracking (``capabilities.change_tracking``) receive reads only the rows
changed since the stored cursor; where that is unavailable, or on a full sync, it reads the whole table and
says why in the log lines. The source rows are staged in the temp table ``__crm_src`` with their
normalised key (``__nkey``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from planhat_pipelines.config import CrmSection, OnMissing
from planhat_pipelines.sync.crm.keys import key_sql, raw_key_sql
from planhat_pipelines.sync.crm.progress import CrmProgressFn, Reporter
from planhat_pipelines.sync.crm.result import CrmResult
from planhat_pipelines.sync.crm.sql import stage
from planhat_pipelines.warehouses.base import ChangeSet, Warehouse


@dataclass(frozen=True)
class ReadPlan:
    """How receive reads the section's table in this run.

    Attributes:
        change_set: The rows changed since the stored cursor; None for a full read.
        new_cursor: The cursor to store once the run commits; None without change tracking.
    """

    change_set: ChangeSet | None
    new_cursor: str | None

    @property
    def full_read(self) -> bool:
        """Whether the whole table is read."""
        return self.change_set is None


def plan_read(
    section: CrmSection, warehouse: Warehouse, columns: list[str], *, full: bool, result: CrmResult
) -> ReadPlan:
    """Choose the read for this run, logging on ``result`` why a partial read was not possible.

    Args:
        section: The sync section.
        warehouse: The section's warehouse.
        columns: The warehouse columns receive reads.
        full: A full sync: read the whole table even where change tracking is available.
        result: The run's result; its ``cursor_before`` is the stored cursor, and its log gets the reasons.
    """
    cursor_before = result.cursor_before
    change_set: ChangeSet | None = None
    new_cursor: str | None = None
    if warehouse.capabilities.change_tracking:
        if not full and cursor_before is not None:
            changes = warehouse.changes_since(section.table, columns, section.warehouse_key, cursor_before)
            if isinstance(changes, ChangeSet):
                change_set = changes
                new_cursor = changes.until
            else:
                result.log.append(f"change tracking unavailable ({changes.reason}); reading the whole table")
        if change_set is None:
            # Take the starting point before the full read, so changes made during the read come next time.
            origin = warehouse.changes_since(section.table, columns, section.warehouse_key, None)
            if isinstance(origin, ChangeSet):
                new_cursor = origin.until
            elif not result.log:
                result.log.append(f"change tracking unavailable ({origin.reason}); reading the whole table")
    result.full_read = change_set is None
    if full:
        result.log.append("full sync requested")
    return ReadPlan(change_set, new_cursor)


def section_removes(section: CrmSection) -> bool:
    """Whether receive archives or deletes the records that left the source (``on_missing``)."""
    return section.on_missing is not OnMissing.IGNORE


def stage_source(
    con: duckdb.DuckDBPyConnection,
    section: CrmSection,
    warehouse: Warehouse,
    plan: ReadPlan,
    columns: list[str],
    *,
    batch_size: int,
    progress: CrmProgressFn | None,
    result: CrmResult,
) -> None:
    """Read the planned rows into the temp table ``__crm_src``, setting ``result.rows_read`` and ``deleted``."""
    change_set = plan.change_set
    if change_set is not None:
        batches: Iterable[pa.RecordBatch] = change_set.rows.to_batches(batch_size)
        result.deleted = len(change_set.deleted_keys)
        if result.deleted:
            result.log.append(
                f"{result.deleted} rows were deleted in the warehouse since the last sync"
                + (
                    "; deletes are not applied to the store (on_missing: ignore)"
                    if not section_removes(section)
                    else ""
                )
            )
    else:
        batches = warehouse.read_batches(section.table, columns, batch_size=batch_size)
    total = change_set.rows.num_rows if change_set is not None else None
    batches = Reporter(section.name, progress, "read", total).counted(batches)
    # The normalised key, computed once while staging: every match below uses it.
    normalised = f", {key_sql(section, raw_key_sql(section))} AS __nkey"
    result.rows_read = stage(con, "__crm_src", batches, columns, normalised)
    result.log.append(
        f"read {result.rows_read} rows from '{section.table}'"
        + (f" changed since cursor {result.cursor_before}" if change_set is not None else " (full read)")
    )
