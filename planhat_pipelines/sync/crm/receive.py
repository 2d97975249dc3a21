"""The CRM receive: new and changed warehouse rows of a section into the store, in set-based steps.

The steps, each over temp tables of the store's connection: read (:mod:`.read`: ``__crm_src``), skip
the rows unchanged since they were last accepted (``__crm_keys``, ``__crm_skip``), validate and convert
every row with the field plans (:mod:`.fields`: ``__crm_rows``), keep the accepted ones (``__crm_ok``),
write them with the row hashes, linked parents, derived Company fields and the cursor in one store
transaction, then record the rejects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa

from planhat_pipelines.config import CrmSection, OnMissing
from planhat_pipelines.errors import KeyValidationError, SyncError
from planhat_pipelines.models.catalog import trim_sql
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.sql_quoting import quote_literal as lit
from planhat_pipelines.store import ModelStore, UpsertCounts
from planhat_pipelines.store.change_log import LogContext
from planhat_pipelines.sync.crm.deletes import (
    Removal,
    apply_removal,
    describe_removal,
    plan_removal,
    restore_returned,
)
from planhat_pipelines.sync.crm.fields import (
    Plan,
    field_error_sql,
    field_value_sql,
    joins_sql,
    receive_plans,
    store_columns_sql,
    values_sql,
)
from planhat_pipelines.sync.crm.keys import KEY, check_key_column, key_error, raw_key_sql
from planhat_pipelines.sync.crm.progress import CrmProgressFn, Reporter
from planhat_pipelines.sync.crm.read import ReadPlan, plan_read, section_removes, stage_source
from planhat_pipelines.sync.crm.result import CrmResult
from planhat_pipelines.sync.crm.sql import DEFAULT_BATCH_SIZE, NULL_KEY, PENDING_PARENT, drop
from planhat_pipelines.warehouses.base import TableInfo, Warehouse

#: Part of every row hash: bump it when receive's conversion rules change, so rows accepted under the old
#: rules are read into the store again once (2: trimmed keys, normalised emails, DECIMAL money).
_RULES_VERSION = 2
#: Columns of the reject table handed to ModelStore.record_rejects.
_REJECT_SCHEMA = pa.schema(
    [("key", pa.string()), ("fingerprint", pa.string()), ("reason", pa.string()), ("value", pa.string())]
)
#: Models whose records the derived Company fields (ARR, MRR, status, renewal) are computed from.
_DERIVES_COMPANY_FIELDS = ("license", "company", "churn")
_TEMPS = ("__crm_src", "__crm_keys", "__crm_skip", "__crm_rows", "__crm_ok", "__crm_missing")


@dataclass
class _Run:
    """One receive of one section: what every step reads, and the result the steps fill in."""

    section: CrmSection
    store: ModelStore
    plans: list[Plan]
    columns: list[str]  # the warehouse columns read: the key column, then the mapped ones
    read: ReadPlan
    result: CrmResult
    run_id: str
    progress: CrmProgressFn | None
    skipped: int = 0  # rows unchanged since this section last accepted them
    removal: Removal | None = None  # records that left the source (``on_missing`` archive/delete)

    @property
    def pending(self) -> str | None:
        """SQL for the in-batch parent reference of a Company section, None when parents are never pending."""
        return next((p.pending for p in self.plans if p.pending), None)


def receive(
    section: CrmSection,
    store: ModelStore,
    warehouse: Warehouse,
    *,
    run_id: str,
    full: bool,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: CrmProgressFn | None = None,
    dry_run: bool = False,
    info: TableInfo | None = None,
) -> CrmResult:
    """Bring new and changed warehouse rows of ``section`` into the store.

    Args:
        section: The sync section (its direction must include receive).
        store: The model store.
        warehouse: The section's warehouse.
        run_id: The sync-log run id the rejects are recorded under.
        full: Read the whole table even when the warehouse offers change tracking, and compare every row
            with the store (no row-hash skip): the "Full sync" button, which also repairs records that
            something else changed in the store.
        batch_size: Rows per read batch and per upsert chunk.
        progress: Called after every batch read from the warehouse (phase ``read``) and once the store
            upsert has committed (phase ``write``).
        dry_run: A preview (the caller rolls the store back): a removal over the delete limit is logged, not
            refused.
        info: The table as the caller already described it this run (else it is described here).

    Returns:
        The counts, cursors and log lines of the run.

    Raises:
        KeyValidationError: The key column is not text, or no row has a usable key.
        SyncError: The section does not receive, or maps a field twice.
        WarehouseError: The table or a mapped column does not exist.
    """
    if not section.direction.receives:
        raise SyncError(f"section '{section.name}' has direction '{section.direction.value}' and does not receive")
    info = info or warehouse.describe(section.table)
    check_key_column(section, info)
    plans = receive_plans(section, info)
    columns = list(dict.fromkeys([section.warehouse_key, *(p.fm.warehouse for p in plans)]))
    cursor_before = store.get_cursor(section.name)
    result = CrmResult(section.name, cursor_before=cursor_before, cursor_after=cursor_before)
    read = plan_read(section, warehouse, columns, full=full, result=result)
    run = _Run(section, store, plans, columns, read, result, run_id, progress)
    try:
        stage_source(
            store.con, section, warehouse, read, columns, batch_size=batch_size, progress=progress, result=result
        )
        if section_removes(section):
            run.removal = plan_removal(store, section, read.change_set, enforce=not dry_run)
            if run.removal is not None and run.removal.refused:
                result.log.append(f"a real run would stop here: {run.removal.refused}")
        _skip_unchanged(run, full=full)
        if run.skipped and run.skipped == result.rows_read:
            return _nothing_changed(run)
        _validate(run)
        rejects = _collect_rejects(run)
        _stage_accepted(run)
        _write(run)
        _record_rejects(run, rejects)
        return result
    finally:
        drop(store.con, *_TEMPS)


# --- row hashes: skip what is unchanged since it was last accepted -------------------------------------
def _row_hash(section: CrmSection, columns: list[str]) -> str:
    """SQL hashing a staged source row together with the section's mapping.

    The mapping's fingerprint is part of the hash, so changing the section's fields, keys or options
    makes every row count as changed on the next run.
    """
    mapping = repr(
        (
            _RULES_VERSION,
            section.model.slug,
            section.planhat_key,
            section.warehouse_key,
            section.company_match,
            section.null_overwrites,
            section.receive_fields(),
        )
    )
    fingerprint = hashlib.sha256(mapping.encode()).hexdigest()[:16]
    return f"hash({lit(fingerprint)}, {', '.join(f'r.{q(c)}' for c in columns)})"


def _source_hash(columns: list[str]) -> str:
    """SQL hashing a staged source row's values alone: the stable part of a reject's fingerprint."""
    return f"hash({', '.join(f'r.{q(c)}' for c in columns)})"


def _skip_unchanged(run: _Run, *, full: bool) -> None:
    """Drop from ``__crm_src`` the rows whose hash is the one stored when the section last accepted them.

    Also stages ``__crm_keys``, the keys that occur exactly once (the only ones a skip or a parent can use).
    A full sync (the "Full sync" button) skips nothing: it compares every row with the store again.
    """
    con, section = run.store.con, run.section
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __crm_keys AS SELECT {KEY} AS __key FROM __crm_src r "
        f"WHERE {KEY} IS NOT NULL GROUP BY 1 HAVING count(*) = 1"
    )
    con.execute(
        'CREATE OR REPLACE TEMP TABLE __crm_skip AS SELECT h."key" AS __key FROM __crm_src r '
        f'JOIN crm_source_hashes h ON h.section = ? AND h."key" = {KEY} AND h.hash = {_row_hash(section, run.columns)} '
        'WHERE h."key" IN (SELECT __key FROM __crm_keys) AND NOT ?',
        [section.name, full],
    )
    run.skipped = int(con.execute("SELECT count(*) FROM __crm_skip").fetchall()[0][0])
    if run.skipped:
        if run.skipped < run.result.rows_read:  # when every row is unchanged, nothing reads __crm_src again
            con.execute(f"DELETE FROM __crm_src r WHERE {KEY} IN (SELECT __key FROM __crm_skip)")
        run.result.log.append(f"{run.skipped} rows unchanged in the warehouse since the last sync: skipped")


def _nothing_changed(run: _Run) -> CrmResult:
    """Every row read is unchanged since the last sync: only the bookkeeping of a run remains."""
    section, store, result = run.section, run.store, run.result
    new_cursor = run.read.new_cursor

    def commit() -> None:
        result.removed = apply_removal(store, section, run.run_id, run.removal)
        if result.removed and section.model.slug in _DERIVES_COMPANY_FIELDS:
            store.refresh_company_fields()  # a license or churn that left changes its company's ARR, status...
        if new_cursor is not None:
            store.set_cursor(section.name, "", new_cursor)

    if run.removal or new_cursor is not None:
        store.atomic(commit)
    if new_cursor is not None:
        result.cursor_after = new_cursor
    result.log.extend(describe_removal(section, result))
    result.unchanged = result.rows_read
    empty = _REJECT_SCHEMA.empty_table()
    # A full read that rejected nothing resolves every open reject (their rows are now accepted and unchanged);
    # a section with none open skips the UPDATE (a DuckLake UPDATE scans the table even when it changes nothing).
    if run.read.full_read and store.has_open_rejects(section.name, run.run_id):
        result.resolved_rejects = store.record_rejects(section.name, run.run_id, empty, resolve_others=True)
    result.log.append(f"received: 0 inserted, 0 updated, {result.unchanged} unchanged, 0 rejected")
    return result


# --- validation: every staged row checked and converted in one statement --------------------------------
def _validate(run: _Run) -> None:
    """Stage ``__crm_rows``: each source row's key, converted values, the reason it is refused and the value shown.

    A key error comes before the field errors; the value recorded with a reject is the key's for a key
    error, else the first refused field's.
    """
    section, plans = run.section, run.plans
    raw_key = raw_key_sql(section)
    values = values_sql(plans)
    run.store.con.execute(
        "CREATE OR REPLACE TEMP TABLE __crm_rows AS SELECT * EXCLUDE (__field_value), "
        "COALESCE(__key_error, __field_error) AS __err, "
        "CASE WHEN __key_error IS NOT NULL THEN left(__raw_key, 100) ELSE __field_value END AS __value "
        f"FROM (SELECT {KEY} AS __key, {raw_key} AS __raw_key, {key_error(section, raw_key, KEY)} AS __key_error, "
        f"{field_error_sql(plans)} AS __field_error, {field_value_sql(plans)} AS __field_value, "
        f"{_source_hash(run.columns)} AS __hash"
        f"{', ' + values if values else ''}, {run.pending or 'NULL'} AS __parent "
        f"FROM __crm_src r {joins_sql(plans)})"
    )
    if run.pending:
        _reject_orphans(run)


def _reject_orphans(run: _Run) -> None:
    """A child whose in-batch parent was rejected cannot be linked: reject it too (to a fixed point)."""
    parent = next(i for i, p in enumerate(run.plans) if p.pending)
    while True:
        changed = run.store.con.execute(
            "UPDATE __crm_rows AS c SET __err = 'field parentId: parent ''' || c.__parent || "
            "''' was rejected in this run', __value = c.__parent FROM __crm_rows AS p WHERE c.__err IS NULL "
            "AND p.__err IS NOT NULL AND p.__key = c.__parent AND c.v"
            + str(parent)
            + f" LIKE {lit(PENDING_PARENT + '%')}"
        ).fetchall()[0][0]
        if not changed:
            break


# --- rejects --------------------------------------------------------------------------------------------
def _rejects(run: _Run) -> pa.Table:
    """One reject record per rejected row of ``__crm_rows`` (the columns ModelStore.record_rejects takes).

    The fingerprint is the hash of the row's source values plus ``#<n>``, its occurrence among identical
    rows, so two identical bad rows are two records and an unchanged bad row keeps its record run to run.
    """
    return run.store.con.sql(
        f"SELECT COALESCE(__key, {lit(NULL_KEY)}) AS \"key\", printf('%016x', __hash) || '#' || "
        "row_number() OVER (PARTITION BY __hash ORDER BY __err, __value) AS fingerprint, __err AS reason, "
        '__value AS "value" FROM __crm_rows WHERE __err IS NOT NULL'
    ).to_arrow_table()


def _collect_rejects(run: _Run) -> pa.Table:
    """The run's reject records (``result.rejected`` is their number), refusing a section without a usable key.

    Raises:
        KeyValidationError: No row read has a usable key (the rejects are recorded first).
    """
    section, result = run.section, run.result
    stats = run.store.con.execute(
        "SELECT count(*) FILTER (WHERE __key_error IS NULL), string_agg(DISTINCT __key_error, '; ') FROM __crm_rows"
    ).fetchall()[0]
    rejects = _rejects(run)
    result.rejected = rejects.num_rows  # one record per rejected row, so the counter is the records written
    if result.rows_read and not stats[0] and not run.skipped:
        run.store.record_rejects(section.name, run.run_id, rejects, resolve_others=False)
        raise KeyValidationError(
            f"section '{section.name}': none of the {result.rows_read} rows of '{section.table}' has a usable "
            f"key in column '{section.warehouse_key}' ({stats[1]}). Fix: make '{section.warehouse_key}' unique "
            "and non-null text in the warehouse, or map another key column under 'keys: warehouse:'"
        )
    return rejects


def _record_rejects(run: _Run, rejects: pa.Table) -> None:
    """Record this run's rejects and resolve the earlier ones it no longer sees; log the counts."""
    result, read = run.result, run.read
    scope: list[str] | None = None
    if read.change_set is not None:
        # Every key this partial read saw: an open reject of one of them that was not recorded again
        # (accepted now, or rejected with other values) is resolved. Null keys are never in scope: a
        # partial read does not see every null-key row.
        con = run.store.con
        scope = [k for (k,) in con.sql("SELECT DISTINCT __key FROM __crm_rows WHERE __key IS NOT NULL").fetchall()]
    result.resolved_rejects = run.store.record_rejects(
        run.section.name, run.run_id, rejects, resolve_others=read.change_set is None, scope_keys=scope
    )
    result.log.append(
        f"received: {result.inserted} inserted, {result.updated} updated, {result.unchanged} unchanged, "
        f"{result.rejected} rejected, {result.resolved_rejects} earlier rejects resolved"
    )


# --- the store write ------------------------------------------------------------------------------------
def _stage_accepted(run: _Run) -> None:
    """Stage ``__crm_ok``: the accepted rows as the model table's columns."""
    run.store.con.execute(
        f"CREATE OR REPLACE TEMP TABLE __crm_ok AS SELECT {', '.join(store_columns_sql(run.section, run.plans))} "
        "FROM __crm_rows WHERE __err IS NULL"
    )


def _write(run: _Run) -> None:
    """Upsert ``__crm_ok`` with its row hashes, linked parents, derived fields and cursor in one transaction."""
    section, store, result, skipped = run.section, run.store, run.result, run.skipped
    new_cursor = run.read.new_cursor
    # Validation and the write are single statements: a line between them keeps a long run visibly moving.
    checked = Reporter(section.name, run.progress, "validate", result.rows_read - skipped)
    checked.add(result.rows_read - skipped)
    writing = Reporter(section.name, run.progress, "write")

    def commit() -> UpsertCounts:
        # Runs again from the start if the commit loses a race with another writer (it only reads the
        # staged temp tables and the store, so a second pass does the same).
        store.label_commit(section.name, run.run_id)
        # One set-based pass over the staged rows: no Arrow round trip, one join with the model table.
        upserted = store.upsert_staged(
            section.model,
            "__crm_ok",
            section.planhat_key,
            null_overwrites=section.null_overwrites,
            log=LogContext(section.name, run.run_id),
        )
        _remember_hashes(run)
        if run.pending:
            _link_parents(run)
        result.removed = apply_removal(store, section, run.run_id, run.removal)
        if section.on_missing is OnMissing.ARCHIVE:
            result.restored = restore_returned(store, section, run.run_id, "__crm_ok")
        if section.model.slug in _DERIVES_COMPANY_FIELDS:
            store.refresh_company_fields()
        if new_cursor is not None:
            store.set_cursor(section.name, "", new_cursor)
        return UpsertCounts(upserted.inserted, upserted.updated, upserted.unchanged + skipped)

    counts = store.atomic(commit)
    # The upsert is one statement, so its progress is one line once it has committed.
    writing.total = counts.inserted + counts.updated + counts.unchanged - skipped
    writing.add(writing.total)
    result.inserted, result.updated, result.unchanged = counts.inserted, counts.updated, counts.unchanged
    result.log.extend(describe_removal(section, result))
    if new_cursor is not None:
        result.cursor_after = new_cursor


def _remember_hashes(run: _Run) -> None:
    """Remember what was accepted, so an unchanged row is skipped next time; rejected rows are retried."""
    con, section = run.store.con, run.section
    con.execute(
        'DELETE FROM crm_source_hashes WHERE section = ? AND "key" IN (SELECT __key FROM __crm_rows)',
        [section.name],
    )
    con.execute(
        f"INSERT INTO crm_source_hashes SELECT ?, {KEY}, {_row_hash(section, run.columns)} FROM __crm_src r "
        f"WHERE {KEY} IN (SELECT __key FROM __crm_rows WHERE __err IS NULL)",
        [section.name],
    )


def _link_parents(run: _Run) -> None:
    """Point the placeholder ``parentId`` of a child whose parent arrived in this run at that parent's id."""
    match = run.section.company_match
    run.store.con.execute(
        f'UPDATE company AS t SET "parentId" = c.id FROM company AS c WHERE starts_with(t."parentId", '
        f"{lit(PENDING_PARENT)}) AND {trim_sql(f'CAST(c.{q(match)} AS VARCHAR)')} = "
        f'substr(t."parentId", {len(PENDING_PARENT) + 1})'
    )
