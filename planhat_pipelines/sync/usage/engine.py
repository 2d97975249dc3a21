"""The usage sync's entry points: check the source, plan the ranges, load one range or run a section."""

from __future__ import annotations

import time
from collections.abc import Iterable

from planhat_pipelines.config import UsageSection
from planhat_pipelines.errors import KeyValidationError
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.drift import Drift, check_drift, compare, mapped_columns
from planhat_pipelines.sync.ranges import KeyRangeSpan, span_at
from planhat_pipelines.sync.usage.batch import Pass, cursor_text, loaded_through
from planhat_pipelines.sync.usage.passes import load_span, reject_invalid_keys, reread_lookback, retry_rejects
from planhat_pipelines.sync.usage.result import ProgressFn, UsageResult
from planhat_pipelines.sync.usage.validation import prepare_refs
from planhat_pipelines.warehouses.base import ColumnKind, TableInfo, Warehouse

_KEY_KINDS = (ColumnKind.INTEGER, ColumnKind.DECIMAL, ColumnKind.FLOAT, ColumnKind.TEXT)


def check_source(section: UsageSection, warehouse: Warehouse, info: TableInfo | None = None) -> TableInfo:
    """Describe the section's table (unless ``info`` is its description) and check its columns before anything
    is read or written.

    Raises:
        WarehouseError: the table or a mapped column does not exist.
        KeyValidationError: the key column is neither numeric nor text.
    """
    info = info or warehouse.describe(section.table)
    key = info.column(section.key)
    if key.kind not in _KEY_KINDS:
        raise KeyValidationError(
            f"usage section '{section.name}': key column '{section.key}' of {section.table} is {key.type}, not "
            "numeric. Fix: use a unique, numeric, incrementing column, or a view that casts it, e.g. "
            f"CAST({section.key} AS BIGINT)"
        )
    for column in section.fields.values():
        info.column(column)
    return info


def pending_ranges(section: UsageSection, store: ModelStore, warehouse: Warehouse) -> tuple[list[KeyRangeSpan], int]:
    """Ranges that hold valid keys not loaded yet, and the warehouse's current maximum valid key (-1 when none).

    One GROUP BY in the warehouse: bounded by the ranges that hold rows, never by the distance between keys.
    """
    check_source(section, warehouse)
    bounds = warehouse.key_bounds(section.table, section.key)
    if bounds is None:
        return [], -1
    loaded = loaded_through(store, section)
    starts = warehouse.occupied_ranges(section.table, section.key, section.partition_span, after=loaded)
    return [span_at(start, section.partition_span) for start in starts], bounds[1]


def load_range(
    section: UsageSection,
    store: ModelStore,
    warehouse: Warehouse,
    span: KeyRangeSpan,
    *,
    run_id: str,
    reread: bool = False,
    result: UsageResult | None = None,
    progress: ProgressFn | None = None,
) -> UsageResult:
    """Load one key range in batches, resuming after its cursor; each batch commits with the range's cursor.

    Args:
        reread: Read the whole range again instead of resuming after its cursor (idempotent).
    """
    info = warehouse.describe(section.table)
    drift = check_source_drift(section, store, info)  # a drift error says more than check_source's
    check_source(section, warehouse, info)
    prepare_refs(section, store)
    one = Pass(
        section, store, warehouse, info, run_id, result or UsageResult(section.name), time.perf_counter(), progress
    )
    one.result.log += drift.notes()
    load_span(one, span, reread=reread)
    if drift.changed:
        store.record_source_columns(section.name, info.columns, run_id)
    return one.result


def check_source_drift(section: UsageSection, store: ModelStore, info: TableInfo) -> Drift:
    """Compare the described source with the columns of the last successful run (see :mod:`..drift`).

    Raises:
        SchemaDriftError: a mapped column was removed or retyped (nothing is read or written).
    """
    drift = compare(store.last_source_columns(section.name), info.columns, mapped_columns(section))
    check_drift(section.name, section.table, drift)
    return drift


def run_usage(
    section: UsageSection,
    store: ModelStore,
    warehouse: Warehouse,
    spans: Iterable[KeyRangeSpan],
    *,
    dagster_run_id: str | None = None,
    reread: bool = False,
    progress: ProgressFn | None = None,
    dry_run: bool = False,
) -> UsageResult:
    """Load ``spans`` in key order, logging the run in the store's sync log.

    In order: retry open rejects, re-read the lookback window, load each range, reject invalid keys.

    Args:
        progress: Called after every committed batch (a log line, a progress bar).
        dry_run: A preview: the whole run reads, validates and counts as it would, inside one store
            transaction that is rolled back (rows, cursors, rejects and the sync log entry included).
    """
    if dry_run:
        with store.rolled_back():
            result = run_usage(
                section, store, warehouse, spans, dagster_run_id=dagster_run_id, reread=reread, progress=progress
            )
        result.preview = True
        return result
    started = time.perf_counter()
    result = UsageResult(section.name, cursor_before=loaded_through(store, section))
    run_id = store.start_run(
        section.name,
        "usage",
        dagster_run_id=dagster_run_id,
        cursor_before=cursor_text(result.cursor_before),
    )
    try:
        info = warehouse.describe(section.table)
        drift = check_source_drift(section, store, info)  # before anything is read, written or checked
        result.log += drift.notes()
        one = _open_pass(section, store, warehouse, run_id, result, started, progress, info)
        retry_rejects(one)
        reread_lookback(one)
        for span in sorted(spans):
            load_span(one, span, reread=reread)
        reject_invalid_keys(one)
        if drift.changed:  # the new baseline, only once the run succeeded
            store.record_source_columns(section.name, info.columns, run_id)
    except Exception as exc:
        result.seconds = time.perf_counter() - started
        notes = "\n".join(result.log) or None
        _finish(store, run_id, result, "failed", loaded_through(store, section), error=str(exc), notes=notes)
        raise
    result.cursor_after = loaded_through(store, section)
    result.seconds = time.perf_counter() - started
    notes = (
        f"{len(result.ranges)} range(s), {result.batches} batch(es), {result.still_rejected} row(s) still "
        "rejected as before"
    )
    notes = "\n".join([notes, *result.log])
    _finish(store, run_id, result, "success", result.cursor_after, notes=notes)
    return result


def _open_pass(
    section: UsageSection,
    store: ModelStore,
    warehouse: Warehouse,
    run_id: str,
    result: UsageResult,
    started: float,
    progress: ProgressFn | None,
    info: TableInfo,
) -> Pass:
    """Check the source and index the references once for every pass of the run.

    The source's highest key is read only when progress is reported (it is the end of an open-ended read).
    """
    check_source(section, warehouse, info)
    prepare_refs(section, store)
    bounds = warehouse.key_bounds(section.table, section.key) if progress is not None else None
    return Pass(section, store, warehouse, info, run_id, result, started, progress, bounds and bounds[1])


def _finish(
    store: ModelStore,
    run_id: str,
    result: UsageResult,
    status: str,
    cursor_after: int | None,
    *,
    error: str | None = None,
    notes: str | None = None,
) -> None:
    """Close the run's sync log entry with its final counts."""
    store.finish_run(
        run_id,
        status,
        rows_read=result.rows_read,
        inserted=result.inserted,
        unchanged=result.unchanged,
        rejected=result.rejected,
        resolved_rejects=result.resolved_rejects,
        cursor_after=cursor_text(cursor_after),
        error=error,
        notes=notes,
    )
