"""One CRM section run: receive then send, logged in the store's sync log (:func:`sync_section`)."""

from __future__ import annotations

import time

from planhat_pipelines.config import CrmSection
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm.keys import check_send_target
from planhat_pipelines.sync.crm.progress import CrmProgressFn
from planhat_pipelines.sync.crm.receive import receive
from planhat_pipelines.sync.crm.result import CrmResult
from planhat_pipelines.sync.crm.send import send
from planhat_pipelines.sync.crm.sql import DEFAULT_BATCH_SIZE
from planhat_pipelines.sync.drift import check_drift, compare, mapped_columns
from planhat_pipelines.warehouses.base import Warehouse

#: How many of the changes a preview would make it shows (newest first).
PREVIEW_SAMPLES = 20


def sync_section(
    section: CrmSection,
    store: ModelStore,
    warehouse: Warehouse,
    *,
    full: bool = False,
    dagster_run_id: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: CrmProgressFn | None = None,
    dry_run: bool = False,
) -> CrmResult:
    """Run one section: receive then send (as its direction says), logged in the store's sync log.

    With ``dry_run`` the run is a preview: it reads, validates and compares exactly as a sync does, inside one
    store transaction that is rolled back at the end, and sends nothing to the warehouse. Its result holds
    the counts it would write and ``samples``, the change-log rows it would add (field-level before/after);
    a removal over the delete limit is reported in its log instead of failing it.

    ``progress`` is called as :func:`receive` and :func:`send` describe (every batch read, the store
    write, every merge batch), so a long run shows movement in its log.

    A send target that is a view is refused before receive runs, so a refused section writes nothing.
    The sync-log row is finished with status ``success`` or ``failed`` (with the error) either way.

    Raises:
        KeyValidationError, ReadOnlyTargetError, SyncError, WarehouseError: as :func:`receive`/:func:`send`.
    """
    if not dry_run:
        return _run(section, store, warehouse, full, dagster_run_id, batch_size, progress, dry_run=False)
    with store.rolled_back():
        return _run(section, store, warehouse, full, dagster_run_id, batch_size, progress, dry_run=True)


def _run(
    section: CrmSection,
    store: ModelStore,
    warehouse: Warehouse,
    full: bool,
    dagster_run_id: str | None,
    batch_size: int,
    progress: CrmProgressFn | None,
    *,
    dry_run: bool,
) -> CrmResult:
    started = time.monotonic()
    cursor_before = store.get_cursor(section.name)
    run_id = store.start_run(section.name, "crm", dagster_run_id=dagster_run_id, cursor_before=cursor_before)
    result = CrmResult(section.name, cursor_before=cursor_before, cursor_after=cursor_before)
    try:
        # --- schema drift: checked before anything is read or written; the new columns recorded on success
        source = warehouse.describe(section.table)
        drift = compare(store.last_source_columns(section.name), source.columns, mapped_columns(section))
        check_drift(section.name, section.table, drift)
        result.log += drift.notes()
        # --- end schema drift
        if section.direction.sends and section.send_fields():
            check_send_target(section, warehouse, source)
        if section.direction.receives:
            received = receive(
                section,
                store,
                warehouse,
                run_id=run_id,
                full=full,
                batch_size=batch_size,
                progress=progress,
                dry_run=dry_run,
                info=source,
            )
            result = result.combine(received)
        if section.direction.sends:
            sent = send(
                section,
                store,
                warehouse,
                run_id=run_id,
                batch_size=batch_size,
                progress=progress,
                dry_run=dry_run,
                info=source,
            )
            sent.cursor_after = result.cursor_after
            result = result.combine(sent)
        if drift.changed:  # schema drift: the new baseline, only once receive and send succeeded
            store.record_source_columns(section.name, source.columns, run_id)
    except Exception as exc:
        store.finish_run(
            run_id,
            "failed",
            rows_read=result.rows_read,
            error=str(exc),
            cursor_after=cursor_before,
            notes="\n".join(result.log),
        )
        raise
    result.log.append(f"took {time.monotonic() - started:.2f} s")
    _finish_success(store, run_id, result)
    if dry_run:
        result.preview = True
        result.samples = store.changes(run_id=run_id, limit=PREVIEW_SAMPLES)
    return result


def _finish_success(store: ModelStore, run_id: str, result: CrmResult) -> None:
    """Finish the sync-log row ``run_id`` as ``success`` with the run's counts, cursor and log lines."""
    store.finish_run(
        run_id,
        "success",
        rows_read=result.rows_read,
        inserted=result.inserted,
        updated=result.updated,
        unchanged=result.unchanged,
        rejected=result.rejected,
        resolved_rejects=result.resolved_rejects,
        sent=result.sent,
        cursor_after=result.cursor_after,
        notes="\n".join(result.log),
    )
