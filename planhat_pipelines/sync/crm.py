"""The CRM sync: one section keeps one Planhat model in the store in step with one warehouse table or view.

Pure core (no Dagster). Warehouse rows arrive as Arrow batches, are staged in temp tables of the store's
DuckDB connection and are validated, converted and matched with set-based SQL; nothing loops over rows.

Directions
    A section is ``receive`` (warehouse -> store), ``send`` (store -> warehouse) or ``both``. A field's
    direction only narrows its section's (the config checks it). :func:`sync_section` runs receive, then
    send, as Planhat does.

Conflicts (the same field changed on both sides since the last sync)
    Because receive runs before send, **the warehouse value wins** for every field whose direction is
    ``both``: receive writes it into the store, then send writes the store value (now the warehouse's)
    back. Fields that are ``send`` only are never received, so for them the store (Planhat) value wins;
    fields that are ``receive`` only are never sent, so the warehouse value wins there too.

Keys
    Planhat side: sourceId, externalId, email (End User) or the native id (send only). Warehouse side: a
    column whose values are unique and text. Rows whose key is null/empty or occurs more than once are
    rejected (every copy of a duplicate: none is picked silently) and recorded as rejects; the rest of
    the section syncs. A section in which no row has a usable key fails with KeyValidationError. A key
    column that is not text (INTEGER, NUMBER, ...) fails the section before anything is written: cast it
    to STRING/VARCHAR in a view and point the section at the view (receive) - text keys keep leading
    zeros and never change when a number type is widened.

Fields
    ``planhat: name`` maps a standard field, converted explicitly to the catalog type with TRY_CAST; a
    value that is present but does not convert rejects the row ("field mrr: 'abc' is not a number").
    ``planhat: custom.<name>`` maps one custom field (values keep their JSON type; a JSON object stays an
    object). ``planhat: custom`` lands a whole JSON/VARIANT object in the custom fields (a non-object
    rejects the row). ``path: plan.tier`` picks a nested attribute of a JSON/VARIANT column. A warehouse
    null leaves the stored value alone unless the section sets ``null_overwrites: true``; the same rule
    holds for send (a store null does not wipe a warehouse value unless ``null_overwrites``).

Relations
    ``companyId`` of company-owned models and Company ``parentId`` hold the warehouse's reference to a
    company, matched by the section's ``company_match`` (externalId, sourceId or native id); the store
    keeps the company's native id, and send maps it back. An unknown (or ambiguous) company rejects the
    row. A parent that arrives in the same run as its child is resolved when ``company_match`` is the
    section's Planhat key.

Receive is diff-based at two levels. A source row whose values hash the same as when this section last
accepted it (``crm_source_hashes``; the hash includes the section's mapping, so a config change re-reads
everything) skips validation and the store altogether, except in a full sync, which compares every row
again; rejected rows have no hash and are retried every run. The remaining rows are compared with the
store and only new or changed records are written. Receive runs in one store transaction per section,
together with the derived Company fields (License and Company sections) and the change-tracking cursor:
a failure leaves the store as it was. Rejects and the sync log are written outside that transaction, so
a failed run is still logged. Warehouses with change tracking (``capabilities.change_tracking``) are read
partially since the stored cursor; where that is unavailable the section falls back to a full read and
says why in the log lines. Deletes reported by change tracking are logged and counted but **not**
applied to the store (Planhat does not delete records from a warehouse sync).

Send writes only fields whose direction includes send, only for records that are new or differ from
the warehouse, by ``Warehouse.merge`` on the warehouse key column in batches. Fields with a ``path`` are
not sent (the nested object cannot be rebuilt one attribute at a time). A view is refused before
anything is written.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import duckdb
import pyarrow as pa

from planhat_pipelines.config import CrmSection, FieldMapping
from planhat_pipelines.errors import KeyValidationError, ReadOnlyTargetError, SyncError
from planhat_pipelines.models import FieldType
from planhat_pipelines.store import ModelStore, UpsertCounts
from planhat_pipelines.store.schema import q
from planhat_pipelines.warehouses.base import ChangeSet, ColumnKind, TableInfo, Warehouse

#: Rows per Arrow chunk handed to the store upsert and to the warehouse merge.
DEFAULT_BATCH_SIZE = 50_000
#: The key recorded for rejects whose key is null or empty (rejected_rows.key is NOT NULL).
NULL_KEY = "(null)"
_PENDING_PARENT = "\x00pending-parent:"

_TYPE_WORDS = {
    FieldType.NUMBER: "a number",
    FieldType.INTEGER: "an integer",
    FieldType.BOOLEAN: "a boolean (true/false)",
    FieldType.DATE: "a date",
    FieldType.DATETIME: "a date-time",
    FieldType.JSON: "valid JSON",
}
_SEND_TYPES = {
    ColumnKind.INTEGER: "BIGINT",
    ColumnKind.FLOAT: "DOUBLE",
    ColumnKind.BOOLEAN: "BOOLEAN",
    ColumnKind.DATE: "DATE",
    ColumnKind.TIMESTAMP: "TIMESTAMP",
}


@dataclass
class CrmResult:
    """What one section run did; the asset turns it into metadata and the sync log stores it.

    Attributes:
        section: The section's name.
        rows_read: Warehouse rows read by receive (all rows on a full read, changed rows otherwise).
        inserted: Store records created.
        updated: Store records changed.
        unchanged: Rows read whose record already held the same values.
        rejected: Rows rejected (bad key, unknown company, unconvertible value, ...).
        resolved_rejects: Earlier rejects that this run accepted or no longer saw.
        sent: Records written to the warehouse by send.
        deleted: Deletes reported by change tracking (logged, not applied to the store).
        full_read: Whether receive read the whole table.
        cursor_before: The change-tracking cursor before the run.
        cursor_after: The cursor after the run.
        log: Human-readable lines about what happened and why.
    """

    section: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    resolved_rejects: int = 0
    sent: int = 0
    deleted: int = 0
    full_read: bool = False
    cursor_before: str | None = None
    cursor_after: str | None = None
    log: list[str] = field(default_factory=list)

    def combine(self, other: CrmResult) -> CrmResult:
        """This result followed by ``other`` (receive then send)."""
        return replace(
            self,
            rows_read=self.rows_read + other.rows_read,
            inserted=self.inserted + other.inserted,
            updated=self.updated + other.updated,
            unchanged=self.unchanged + other.unchanged,
            rejected=self.rejected + other.rejected,
            resolved_rejects=self.resolved_rejects + other.resolved_rejects,
            sent=self.sent + other.sent,
            deleted=self.deleted + other.deleted,
            full_read=self.full_read or other.full_read,
            cursor_after=other.cursor_after,
            log=[*self.log, *other.log],
        )


# --- small SQL helpers ---------------------------------------------------------------------------------
def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_path(path: str) -> str:
    return "$" + "".join('."' + part.replace('"', '\\"') + '"' for part in path.split("."))


def _stage(con: duckdb.DuckDBPyConnection, name: str, batches: Iterable[pa.RecordBatch], columns: list[str]) -> int:
    """Stream ``batches`` into temp table ``name`` (columns renamed to ``columns``); returns its row count."""
    it: Iterator[pa.RecordBatch] = iter(batches)
    first = next(it, None)
    if first is None:
        reader = pa.table({c: pa.array([], pa.string()) for c in columns}).to_reader()
    else:
        # Adapters may return other letter case (Snowflake upper-cases); the requested names are canonical.
        schema = pa.schema([pa.field(c, t) for c, t in zip(columns, first.schema.types, strict=True)])
        renamed = (b.rename_columns(columns) for b in itertools.chain([first], it))
        reader = pa.RecordBatchReader.from_batches(schema, renamed)
    con.register("__crm_in", reader)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM __crm_in")
    finally:
        con.unregister("__crm_in")
    return int(con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0])


def _nothing_changed(
    section: CrmSection, store: ModelStore, result: CrmResult, run_id: str, new_cursor: str | None, *, full_read: bool
) -> CrmResult:
    """Every row read is unchanged since the last sync: only the bookkeeping of a run remains."""
    if new_cursor is not None:
        store.set_cursor(section.name, "", new_cursor)
        result.cursor_after = new_cursor
    result.unchanged = result.rows_read
    empty = pa.table({"key": pa.array([], pa.string()), "reason": pa.array([], pa.string())})
    # A full read that rejected nothing resolves every open reject (their rows are now accepted and unchanged).
    result.resolved_rejects = store.record_rejects(section.name, run_id, empty, resolve_others=full_read)
    result.log.append(f"received: 0 inserted, 0 updated, {result.unchanged} unchanged, 0 rejected")
    return result


def _row_hash(section: CrmSection, columns: list[str]) -> str:
    """SQL hashing a staged source row together with the section's mapping.

    The mapping's fingerprint is part of the hash, so changing the section's fields, keys or options
    makes every row count as changed on the next run.
    """
    mapping = repr(
        (
            section.model.slug,
            section.planhat_key,
            section.warehouse_key,
            section.company_match,
            section.null_overwrites,
            section.receive_fields(),
        )
    )
    fingerprint = hashlib.sha256(mapping.encode()).hexdigest()[:16]
    return f"hash({_lit(fingerprint)}, {', '.join(f'r.{q(c)}' for c in columns)})"


def _drop(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    for name in names:
        con.execute(f"DROP TABLE IF EXISTS {name}")


def _check_key_column(section: CrmSection, info: TableInfo) -> None:
    col = info.column(section.warehouse_key)
    if col.kind is not ColumnKind.TEXT:
        key = section.warehouse_key
        raise KeyValidationError(
            f"section '{section.name}': key column '{key}' of {'view' if info.is_view else 'table'} "
            f"'{section.table}' is {col.type}, but keys must be text. Fix: cast it to STRING/VARCHAR in a view "
            f"(SELECT CAST({key} AS STRING) AS {key}, ...) and point the section's table at that view"
        )


def check_send_target(section: CrmSection, warehouse: Warehouse) -> TableInfo:
    """Describe the section's table and refuse a view before anything is written.

    Raises:
        ReadOnlyTargetError: The target is a view, naming the section and the view.
        KeyValidationError: The key column is not text.
    """
    info = warehouse.describe(section.table)
    if info.is_view and not warehouse.capabilities.views_writable:
        raise ReadOnlyTargetError(
            warehouse.name,
            f"section '{section.name}': view '{section.table}'",
            "is read-only, so records cannot be sent to it (nothing was written)",
            f"point section '{section.name}' at a table, or set its direction to 'receive'",
        )
    _check_key_column(section, info)
    return info


def _is_relation(section: CrmSection, fm: FieldMapping) -> bool:
    model = section.model
    if fm.planhat == "companyId" and model.company_field == "companyId":
        return True
    return fm.planhat == "parentId" and model.slug == "company"


# --- receive -------------------------------------------------------------------------------------------
@dataclass
class _Plan:
    """SQL pieces for one received field."""

    fm: FieldMapping
    value: str  # the converted value (standard type, company id, or JSON for custom)
    error: str | None = None  # SQL text of the reason, NULL when the row is fine
    join: str = ""
    pending: str | None = None  # company parentId resolved later in this run (placeholder value)


def _receive_plans(section: CrmSection, info: TableInfo) -> list[_Plan]:
    plans: list[_Plan] = []
    seen: set[str] = set()
    for i, fm in enumerate(section.receive_fields()):
        if fm.planhat == section.planhat_key:
            continue  # the key column already provides it
        if fm.planhat in seen and fm.planhat != "custom":
            raise SyncError(
                f"section '{section.name}': field '{fm.planhat}' is mapped twice for receive. "
                "Fix: keep one mapping, or narrow one of them to 'direction: send'"
            )
        seen.add(fm.planhat)
        col = info.column(fm.warehouse)
        raw = f"r.{q(fm.warehouse)}"
        is_json = col.kind is ColumnKind.JSON
        js_raw = f"TRY_CAST({raw} AS JSON)"
        not_json: str | None = None
        if fm.path:
            path = _lit(_json_path(fm.path))
            picked = f"json_extract({js_raw}, {path})"
            js = f"(CASE WHEN json_type({picked}) = 'NULL' THEN NULL ELSE {picked} END)"
            text = f"(CASE WHEN json_type({js}) = 'VARCHAR' THEN {js} ->> '$' ELSE CAST({js} AS VARCHAR) END)"
            typed_src = text
            not_json = f"{raw} IS NOT NULL AND {js_raw} IS NULL"
        elif is_json:
            js = f"(CASE WHEN json_type({js_raw}) = 'NULL' THEN NULL ELSE {js_raw} END)"
            # A JSON string becomes its text; an object or array stays readable JSON text, never a repr.
            text = f"(CASE WHEN json_type({js}) = 'VARCHAR' THEN {js} ->> '$' ELSE CAST({js} AS VARCHAR) END)"
            typed_src = text
        else:
            js = f"to_json({raw})"
            text = f"CAST({raw} AS VARCHAR)"
            typed_src = raw
        shown = f"left({text}, 100)"
        where = f"field {fm.planhat}"
        bad_json = f"{_lit(where + ': column ' + repr(fm.warehouse) + ' does not hold valid JSON')}"
        if fm.planhat == "custom":
            type_word = f"lower(json_type({js}))"
            error: str | None = (
                f"CASE WHEN {not_json or 'FALSE'} THEN {bad_json} "
                f"WHEN {js} IS NOT NULL AND json_type({js}) <> 'OBJECT' THEN "
                f"{_lit(where + ': column ' + repr(fm.warehouse) + ' holds ')} || {type_word} || "
                f"{_lit(', not a JSON object whose keys become custom fields')} END"
            )
            plans.append(_Plan(fm, f"(CASE WHEN json_type({js}) = 'OBJECT' THEN {js} END)", error))
        elif fm.is_custom:
            error = f"CASE WHEN {not_json} THEN {bad_json} END" if not_json else None
            plans.append(_Plan(fm, js, error))
        elif _is_relation(section, fm):
            plans.append(_relation_plan(section, fm, i, text))
        else:
            spec = section.model.field(fm.planhat)
            assert spec is not None  # config validated it
            if spec.type is FieldType.TEXT:
                value = text
                error = f"CASE WHEN {not_json} THEN {bad_json} END" if not_json else None
            else:
                if spec.type is FieldType.JSON:
                    value = js if (is_json or fm.path) else f"TRY_CAST({raw} AS JSON)"
                else:
                    value = f"TRY_CAST({typed_src} AS {spec.type.duckdb_type})"
                error = (
                    f"CASE WHEN {not_json or 'FALSE'} THEN {bad_json} "
                    f"WHEN {text} IS NOT NULL AND {value} IS NULL THEN "
                    f"{_lit(where + ': ' + chr(39))} || {shown} || "
                    f"{_lit(chr(39) + ' is not ' + _TYPE_WORDS[spec.type])} END"
                )
            plans.append(_Plan(fm, value, error))
    return plans


def _relation_plan(section: CrmSection, fm: FieldMapping, i: int, text: str) -> _Plan:
    match = section.company_match
    alias = f"__rel{i}"
    join = (
        f"LEFT JOIN (SELECT CAST(c.{q(match)} AS VARCHAR) AS ref, min(c.id) AS id, count(*) AS n FROM company c "
        f"WHERE c.{q(match)} IS NOT NULL GROUP BY 1) AS {alias} ON {alias}.ref = {text}"
    )
    where = f"field {fm.planhat}: "
    # A parent arriving in this same batch is found by the section key when company_match is that key.
    in_batch = fm.planhat == "parentId" and match == section.planhat_key
    batch_hit = f"{text} IN (SELECT __key FROM __crm_keys)" if in_batch else "FALSE"
    error = (
        f"CASE WHEN {text} IS NULL THEN NULL "
        f"WHEN {alias}.n > 1 THEN {_lit(where + match + ' ' + chr(39))} || {text} || "
        f"{_lit(chr(39) + ' matches ')} || {alias}.n || ' companies' "
        f"WHEN {alias}.id IS NULL AND NOT ({batch_hit}) THEN "
        f"{_lit(where + 'no company has ' + match + ' ' + chr(39))} || {text} || "
        f"{_lit(chr(39) + ' (sync the companies first, or fix the reference)')} END"
    )
    value = f"COALESCE({alias}.id, CASE WHEN {batch_hit} THEN {_lit(_PENDING_PARENT)} || {text} END)"
    return _Plan(fm, value, error, join, pending=text if in_batch else None)


def _custom_patch(section: CrmSection, plans: list[_Plan]) -> str | None:
    """SQL for the row's custom-field JSON patch, or None when the section maps no custom field."""
    named = [(p.fm.custom_name, f"v{i}") for i, p in enumerate(plans) if p.fm.custom_name]
    wholes = [f"v{i}" for i, p in enumerate(plans) if p.fm.planhat == "custom"]
    if not named and not wholes:
        return None
    empty = "CAST([] AS STRUCT(key VARCHAR, value JSON)[])"
    names = ", ".join(_lit(str(n)) for n, _ in named) or "NULL"
    parts = [
        f"COALESCE(list_filter(map_entries(TRY_CAST({w} AS MAP(VARCHAR, JSON))), "
        f"lambda e: e.key NOT IN ({names})), {empty})"
        for w in wholes
    ]
    if named:
        parts.append("[" + ", ".join(f"struct_pack(key := {_lit(str(n))}, value := {v})" for n, v in named) + "]")
    entries = f"list_concat({', '.join(parts)})" if len(parts) > 1 else parts[0]
    if not section.null_overwrites:
        # A warehouse null must not wipe a stored custom field: drop null entries from the patch.
        entries = f"list_filter({entries}, lambda e: e.value IS NOT NULL)"
    return f"to_json(map_from_entries({entries}))"


def receive(
    section: CrmSection,
    store: ModelStore,
    warehouse: Warehouse,
    *,
    run_id: str,
    full: bool,
    batch_size: int = DEFAULT_BATCH_SIZE,
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

    Returns:
        The counts, cursors and log lines of the run.

    Raises:
        KeyValidationError: The key column is not text, or no row has a usable key.
        SyncError: The section does not receive, or maps a field twice.
        WarehouseError: The table or a mapped column does not exist.
    """
    if not section.direction.receives:
        raise SyncError(f"section '{section.name}' has direction '{section.direction.value}' and does not receive")
    con = store.con
    info = warehouse.describe(section.table)
    _check_key_column(section, info)
    plans = _receive_plans(section, info)
    columns = list(dict.fromkeys([section.warehouse_key, *(p.fm.warehouse for p in plans)]))
    cursor_before = store.get_cursor(section.name)
    result = CrmResult(section.name, cursor_before=cursor_before, cursor_after=cursor_before)

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

    temps = ("__crm_src", "__crm_keys", "__crm_skip", "__crm_rows", "__crm_ok")
    try:
        if change_set is not None:
            batches: Iterable[pa.RecordBatch] = change_set.rows.to_batches(batch_size)
            result.deleted = len(change_set.deleted_keys)
            if result.deleted:
                result.log.append(
                    f"{result.deleted} rows were deleted in the warehouse since the last sync; deletes are "
                    "not applied to the store (records stay in Planhat)"
                )
        else:
            batches = warehouse.read_batches(section.table, columns, batch_size=batch_size)
        result.rows_read = _stage(con, "__crm_src", batches, columns)
        result.log.append(
            f"read {result.rows_read} rows from '{section.table}'"
            + (f" changed since cursor {cursor_before}" if change_set is not None else " (full read)")
        )
        key = f"r.{q(section.warehouse_key)}"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __crm_keys AS SELECT CAST({key} AS VARCHAR) AS __key FROM __crm_src r "
            f"WHERE {key} IS NOT NULL AND trim(CAST({key} AS VARCHAR)) <> '' GROUP BY 1 HAVING count(*) = 1"
        )
        # Rows whose source values are unchanged since this section last accepted them skip all work below;
        # a full sync (the "Full sync" button) compares every row with the store again.
        row_hash = _row_hash(section, columns)
        con.execute(
            'CREATE OR REPLACE TEMP TABLE __crm_skip AS SELECT h."key" AS __key FROM __crm_src r '
            'JOIN crm_source_hashes h ON h.section = ? AND h."key" = CAST('
            f"{key} AS VARCHAR) AND h.hash = {row_hash} "
            'WHERE h."key" IN (SELECT __key FROM __crm_keys) AND NOT ?',
            [section.name, full],
        )
        skipped = int(con.execute("SELECT count(*) FROM __crm_skip").fetchall()[0][0])
        if skipped:
            con.execute(f"DELETE FROM __crm_src r WHERE CAST({key} AS VARCHAR) IN (SELECT __key FROM __crm_skip)")
            result.log.append(f"{skipped} rows unchanged in the warehouse since the last sync: skipped")
        if skipped and skipped == result.rows_read:
            return _nothing_changed(section, store, result, run_id, new_cursor, full_read=change_set is None)
        key_error = (
            f"CASE WHEN {key} IS NULL OR trim(CAST({key} AS VARCHAR)) = '' THEN "
            f"'key column ' || {_lit(repr(section.warehouse_key))} || ' is null or empty' "
            f"WHEN count(*) OVER (PARTITION BY {key}) > 1 THEN 'duplicate key: column ' || "
            f"{_lit(repr(section.warehouse_key))} || ' holds ''' || CAST({key} AS VARCHAR) || ''' in ' || "
            f"count(*) OVER (PARTITION BY {key}) || ' rows' END"
        )
        field_errors = [p.error for p in plans if p.error]
        field_error = f"NULLIF(concat_ws('; ', {', '.join(field_errors)}), '')" if field_errors else "NULL"
        values = ", ".join(f"{p.value} AS v{i}" for i, p in enumerate(plans))
        pendings = [p.pending for p in plans if p.pending]
        joins = " ".join(p.join for p in plans)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE __crm_rows AS SELECT *, COALESCE(__key_error, __field_error) AS __err "
            f"FROM (SELECT CAST({key} AS VARCHAR) AS __key, {key_error} AS __key_error, {field_error} AS __field_error"
            f"{', ' + values if values else ''}, {pendings[0] if pendings else 'NULL'} AS __parent "
            f"FROM __crm_src r {joins})"
        )
        if pendings:
            # A child whose in-batch parent was rejected cannot be linked: reject it too (to a fixed point).
            while True:
                changed = con.execute(
                    "UPDATE __crm_rows AS c SET __err = 'field parentId: parent ''' || c.__parent || "
                    "''' was rejected in this run' FROM __crm_rows AS p WHERE c.__err IS NULL "
                    "AND p.__err IS NOT NULL AND p.__key = c.__parent AND c.v"
                    + str(next(i for i, p in enumerate(plans) if p.pending))
                    + f" LIKE {_lit(_PENDING_PARENT + '%')}"
                ).fetchall()[0][0]
                if not changed:
                    break
        stats = con.execute(
            "SELECT count(*) FILTER (WHERE __err IS NOT NULL), count(*) FILTER (WHERE __key_error IS NULL), "
            "string_agg(DISTINCT __key_error, '; ') FROM __crm_rows"
        ).fetchall()[0]
        result.rejected = int(stats[0])
        rejects = con.sql(
            f"SELECT DISTINCT COALESCE(NULLIF(trim(__key), ''), {_lit(NULL_KEY)}) AS \"key\", __err AS reason "
            "FROM __crm_rows WHERE __err IS NOT NULL"
        ).to_arrow_table()
        if result.rows_read and not stats[1] and not skipped:
            store.record_rejects(section.name, run_id, rejects, resolve_others=False)
            raise KeyValidationError(
                f"section '{section.name}': none of the {result.rows_read} rows of '{section.table}' has a usable "
                f"key in column '{section.warehouse_key}' ({stats[2]}). Fix: make '{section.warehouse_key}' unique "
                "and non-null text in the warehouse, or map another key column under 'keys: warehouse:'"
            )

        out = [f"__key AS {q(section.planhat_key)}"]
        out += [f"v{i} AS {q(p.fm.planhat)}" for i, p in enumerate(plans) if not p.fm.is_custom]
        patch = _custom_patch(section, plans)
        if patch:
            out.append(f"{patch} AS custom")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __crm_ok AS SELECT {', '.join(out)} FROM __crm_rows WHERE __err IS NULL"
        )
        with store.transaction():
            # One set-based pass over the staged rows: no Arrow round trip, one join with the model table.
            counts = store.upsert(
                section.model, "__crm_ok", section.planhat_key, null_overwrites=section.null_overwrites
            )
            # Remember what was accepted, so an unchanged row is skipped next time; rejected rows are retried.
            con.execute(
                'DELETE FROM crm_source_hashes WHERE section = ? AND "key" IN (SELECT __key FROM __crm_rows)',
                [section.name],
            )
            con.execute(
                f"INSERT INTO crm_source_hashes SELECT ?, CAST({key} AS VARCHAR), {row_hash} FROM __crm_src r "
                f"WHERE CAST({key} AS VARCHAR) IN (SELECT __key FROM __crm_rows WHERE __err IS NULL)",
                [section.name],
            )
            counts = UpsertCounts(counts.inserted, counts.updated, counts.unchanged + skipped)
            if pendings:
                con.execute(
                    f'UPDATE company AS t SET "parentId" = c.id FROM company AS c WHERE starts_with(t."parentId", '
                    f"{_lit(_PENDING_PARENT)}) AND CAST(c.{q(section.company_match)} AS VARCHAR) = "
                    f'substr(t."parentId", {len(_PENDING_PARENT) + 1})'
                )
            if section.model.slug in ("license", "company"):
                store.refresh_company_fields()
            if new_cursor is not None:
                store.set_cursor(section.name, "", new_cursor)
        result.inserted, result.updated, result.unchanged = counts.inserted, counts.updated, counts.unchanged
        if new_cursor is not None:
            result.cursor_after = new_cursor
        scope: list[str] | None = None
        if change_set is not None:
            scope = [k for (k,) in con.sql(f"SELECT {q(section.planhat_key)} FROM __crm_ok").fetchall()]
        result.resolved_rejects = store.record_rejects(
            section.name, run_id, rejects, resolve_others=change_set is None, scope_keys=scope
        )
        result.log.append(
            f"received: {counts.inserted} inserted, {counts.updated} updated, {counts.unchanged} unchanged, "
            f"{result.rejected} rejected, {result.resolved_rejects} earlier rejects resolved"
        )
        return result
    finally:
        _drop(con, *temps)


# --- send ----------------------------------------------------------------------------------------------
def send(
    section: CrmSection,
    store: ModelStore,
    warehouse: Warehouse,
    *,
    run_id: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> CrmResult:
    """Write the store's send fields of ``section`` to its warehouse table, new or changed records only.

    Args:
        section: The sync section (its direction must include send).
        store: The model store.
        warehouse: The section's warehouse.
        run_id: The sync-log run id (kept for symmetry with :func:`receive`).
        batch_size: Rows per merge batch.

    Returns:
        The run's ``sent`` count and log lines.

    Raises:
        ReadOnlyTargetError: The target is a view (nothing is written).
        KeyValidationError: The warehouse key column is not text.
        SyncError: The section does not send.
    """
    del run_id
    if not section.direction.sends:
        raise SyncError(f"section '{section.name}' has direction '{section.direction.value}' and does not send")
    info = check_send_target(section, warehouse)
    con = store.con
    result = CrmResult(section.name)
    model = section.model
    wkey = section.warehouse_key
    selects = [f"CAST(m.{q(section.planhat_key)} AS VARCHAR) AS {q(wkey)}"]
    kinds: dict[str, str] = {}  # warehouse column -> DuckDB type the value is sent as ("JSON" for JSON text)
    joins: list[str] = []
    used = {wkey.lower()}
    for i, fm in enumerate(section.send_fields()):
        if fm.path:
            result.log.append(f"field {fm.planhat} has a path and is not sent (receive only)")
            continue
        if fm.warehouse.lower() in used:
            if fm.warehouse.lower() != wkey.lower() or fm.planhat != section.planhat_key:
                result.log.append(f"field {fm.planhat}: column '{fm.warehouse}' is already sent; skipped")
            continue
        used.add(fm.warehouse.lower())
        col = info.column(fm.warehouse)
        target = "JSON" if col.kind is ColumnKind.JSON else _SEND_TYPES.get(col.kind, "VARCHAR")
        if col.kind is ColumnKind.DECIMAL:
            target = "BIGINT" if col.scale == 0 else "DOUBLE"
        kinds[fm.warehouse] = target
        if fm.planhat == "custom":
            value = "CAST(m.custom AS JSON)"
        elif fm.custom_name:
            value = f"json_extract(m.custom, {_lit(_json_path(fm.custom_name))})"
        elif _is_relation(section, fm):
            joins.append(f"LEFT JOIN company AS __c{i} ON __c{i}.id = m.{q(fm.planhat)}")
            value = f"to_json(__c{i}.{q(section.company_match)})"
        else:
            spec = model.field(fm.planhat)
            assert spec is not None
            value = f"CAST(m.{q(fm.planhat)} AS JSON)" if spec.type is FieldType.JSON else f"to_json(m.{q(fm.planhat)})"
        # Every value goes through JSON once, so one conversion covers standard and custom fields alike.
        if target == "JSON":
            selects.append(f"CAST({value} AS VARCHAR) AS {q(fm.warehouse)}")
        else:
            scalar = (
                f"(CASE WHEN json_type({value}) IN ('VARCHAR') THEN {value} ->> '$' ELSE CAST({value} AS VARCHAR) END)"
            )
            selects.append(f"TRY_CAST({scalar} AS {target}) AS {q(fm.warehouse)}")
    if not kinds:
        result.log.append("no field is sent")
        return result

    temps = ("__crm_send", "__crm_wh", "__crm_out")
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __crm_send AS SELECT {', '.join(selects)} FROM {q(model.slug)} AS m "
            f"{' '.join(joins)} WHERE m.{q(section.planhat_key)} IS NOT NULL"
        )
        missing = con.execute(f"SELECT count(*) FROM {q(model.slug)} WHERE {q(section.planhat_key)} IS NULL").fetchall()
        if missing[0][0]:
            result.log.append(f"{missing[0][0]} records have no {section.planhat_key} and were not sent")
        wh_cols = [wkey, *kinds]
        _stage(con, "__crm_wh", warehouse.read_batches(section.table, wh_cols, batch_size=batch_size), wh_cols)

        def wh_value(c: str) -> str:
            t = kinds[c]
            return f"json(TRY_CAST(w.{q(c)} AS JSON))" if t == "JSON" else f"TRY_CAST(w.{q(c)} AS {t})"

        def new_value(c: str) -> str:
            s = f"json(s.{q(c)})" if kinds[c] == "JSON" else f"s.{q(c)}"
            return s if section.null_overwrites else f"COALESCE({s}, {wh_value(c)})"

        outs = [f"s.{q(wkey)} AS {q(wkey)}"] + [
            f"CAST({new_value(c)} AS {'VARCHAR' if kinds[c] == 'JSON' else kinds[c]}) AS {q(c)}" for c in kinds
        ]
        differs = " OR ".join(f"{new_value(c)} IS DISTINCT FROM {wh_value(c)}" for c in kinds)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __crm_out AS SELECT row_number() OVER () AS __i, {', '.join(outs)} "
            "FROM __crm_send s LEFT JOIN (SELECT * FROM __crm_wh WHERE "
            f"{q(wkey)} IN (SELECT {q(wkey)} FROM __crm_wh GROUP BY 1 HAVING count(*) = 1)) w "
            f"ON CAST(w.{q(wkey)} AS VARCHAR) = s.{q(wkey)} WHERE w.{q(wkey)} IS NULL OR {differs}"
        )
        total = int(con.execute("SELECT count(*) FROM __crm_send").fetchall()[0][0])
        pending = int(con.execute("SELECT count(*) FROM __crm_out").fetchall()[0][0])
        names = ", ".join(q(c) for c in [wkey, *kinds])
        for start in range(0, pending, batch_size):
            chunk = con.sql(
                f"SELECT {names} FROM __crm_out WHERE __i > {start} AND __i <= {start + batch_size}"
            ).to_arrow_table()
            merged = warehouse.merge(section.table, chunk, wkey, batch_size=batch_size)
            result.sent += merged.inserted + merged.updated
        result.log.append(f"sent {result.sent} records to '{section.table}' ({total - pending} already up to date)")
        return result
    finally:
        _drop(con, *temps)


def sync_section(
    section: CrmSection,
    store: ModelStore,
    warehouse: Warehouse,
    *,
    full: bool = False,
    dagster_run_id: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> CrmResult:
    """Run one section: receive then send (as its direction says), logged in the store's sync log.

    A send target that is a view is refused before receive runs, so a refused section writes nothing.
    The sync-log row is finished with status ``success`` or ``failed`` (with the error) either way.

    Raises:
        KeyValidationError, ReadOnlyTargetError, SyncError, WarehouseError: as :func:`receive`/:func:`send`.
    """
    started = time.monotonic()
    cursor_before = store.get_cursor(section.name)
    run_id = store.start_run(section.name, "crm", dagster_run_id=dagster_run_id, cursor_before=cursor_before)
    result = CrmResult(section.name, cursor_before=cursor_before, cursor_after=cursor_before)
    try:
        if section.direction.sends and section.send_fields():
            check_send_target(section, warehouse)
        if section.direction.receives:
            result = result.combine(receive(section, store, warehouse, run_id=run_id, full=full, batch_size=batch_size))
        if section.direction.sends:
            sent = send(section, store, warehouse, run_id=run_id, batch_size=batch_size)
            sent.cursor_after = result.cursor_after
            result = result.combine(sent)
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
    return result
