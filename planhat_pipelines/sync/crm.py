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

Matching: how keys and references compare
    sourceId, externalId and native ids (keys, and the ``company_match`` of a company reference) match
    **exactly after trimming** surrounding whitespace (space, tab, CR, LF, FF) on both sides: a
    warehouse key ' C-1 ' is stored as 'C-1', matches 'C-1', and is a duplicate of a 'C-1' row; case
    matters. End User **emails are normalised in the store**, not only compared: receive stores
    ``lower(trim(email))`` (:func:`planhat_pipelines.models.catalog.email_sql`), whether email is the
    section's key or a mapped field, so 'Ann@X.com ' arrives as 'ann@x.com', and 'ANN@x.com' is the same
    End User (two such rows are one duplicate key). Anything that looks an End User up by email (the
    usage sync) compares ``lower(trim(...))`` of its reference with the stored value. An email that is
    not one (``EMAIL_PATTERN``: one '@', a non-empty part before it, a domain with a dot, no
    whitespace - 'not-an-email@@', 'a b@c.com', '@x.com') rejects its row naming the field and value; a
    blank email field is null. Send writes a record back under the warehouse's own spelling of a matched
    key, so the MERGE updates the row ' C-1 ' or 'Ann@X.com ' instead of adding 'C-1' / 'ann@x.com'.
    A store written before these rules has its keys and emails normalised once when it is opened
    (``store/schema.py``), so its records keep matching.

Fields
    ``planhat: name`` maps a standard field, converted explicitly to the catalog type with TRY_CAST; a
    value that is present but does not convert rejects the row ("field mrr: 'abc' is not a number").
    Numbers must be finite and fit: NaN, +/-inf (a DOUBLE column's or text such as 'inf') and values
    out of range ('1e400', more than 32 digits before the point for money) reject the row with the
    field named; so does a NaN/infinite DOUBLE mapped to a ``custom.<name>`` field (JSON has neither).
    Money fields are DECIMAL(38,6) (see the catalog): a NUMERIC/DECIMAL column arrives exactly, more
    than 6 decimals round half away from zero, and send writes a DECIMAL column as DECIMAL (never
    through a DOUBLE), so 1234567890123456.78 stays exact both ways.
    ``planhat: custom.<name>`` maps one custom field (values keep their JSON type; a JSON object stays an
    object). ``planhat: custom`` lands a whole JSON object in the custom fields, from a JSON/VARIANT
    column or a text column holding JSON text (a non-object, or text that is not JSON, rejects the row;
    blank text holds nothing). ``path: plan.tier`` picks a nested attribute of a JSON/VARIANT column. A warehouse
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
a failed run is still logged. Every rejected source row is its own reject record (key, reason, the
offending value, and a fingerprint: the hash of the row's source values plus ``#<n>``, its occurrence
among identical rows), so three null-key rows are three records, both copies of a duplicate key two,
and ``rejected`` is the number of records the run wrote. Warehouses with change tracking
(``capabilities.change_tracking``) are read partially since the stored cursor; where that is unavailable
the section falls back to a full read and says why in the log lines. Deletes reported by change tracking
are logged and counted but **not** applied to the store (Planhat does not delete records from a warehouse
sync).

Send writes only fields whose direction includes send, only for records that are new or differ from
the warehouse, by ``Warehouse.merge`` on the warehouse key column in batches. Fields with a ``path`` are
not sent (the nested object cannot be rebuilt one attribute at a time). A view is refused before
anything is written.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import duckdb
import pyarrow as pa

from planhat_pipelines.config import CrmSection, FieldMapping
from planhat_pipelines.errors import KeyValidationError, ReadOnlyTargetError, SyncError
from planhat_pipelines.models import FieldType
from planhat_pipelines.models.catalog import EMAIL_PATTERN, MONEY_INTEGER_DIGITS, MONEY_SCALE, email_sql, trim_sql
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
    FieldType.MONEY: "a number",
}
#: The largest decimal scale a value is sent with (BigQuery BIGNUMERIC reports 38, which leaves no digit
#: before the point in a DECIMAL(38, s)); money has 6 decimals, so nothing of it is lost.
_MAX_SEND_SCALE = 12
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


@dataclass(frozen=True)
class CrmProgress:
    """Where a running section is: after every batch read from the warehouse, the store upsert, every send batch.

    Attributes:
        section: The section's name.
        phase: ``read`` (warehouse rows staged: receive's source rows, or send's comparison read of the
            target), ``validate`` (the staged rows are checked and converted, before the store write),
            ``write`` (the store upsert is done) or ``send`` (records merged into the warehouse).
        rows: Rows done so far in this phase.
        total: Rows the phase will handle, when known (a change-tracking read, the upsert, the send);
            None for a full read, whose size the warehouse is not asked for.
        seconds: Time since the phase started.
    """

    section: str
    phase: str
    rows: int
    total: int | None
    seconds: float

    @property
    def rate(self) -> float:
        """Rows per second in this phase so far."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        """Time left in this phase at the rate so far (None when done, or when the total or rate is unknown)."""
        if self.total is None or self.rows <= 0 or self.seconds <= 0 or self.rows >= self.total:
            return None
        return max(self.total - self.rows, 0) / self.rate

    def describe(self) -> str:
        """One log line: rows so far (of the total, with a percentage, when known), rate and time left."""
        text = f"{self.section} ({self.phase}): {self.rows:,}"
        if self.total is not None:
            share = 100 * self.rows // self.total if self.total else 100
            text += f" of {self.total:,} rows ({share}%)"
        else:
            text += " rows"
        text += f"; {self.rate:,.0f} rows/s"
        left = self.seconds_left
        return text if left is None else text + f"; about {left:,.0f} s left"


CrmProgressFn = Callable[[CrmProgress], None]


class _Reporter:
    """Hands one phase's running row count to a progress callback (a no-op without one)."""

    def __init__(self, section: str, progress: CrmProgressFn | None, phase: str, total: int | None = None) -> None:
        self.section, self.progress, self.phase, self.total = section, progress, phase, total
        self.rows = 0
        self.started = time.perf_counter()

    def add(self, rows: int) -> None:
        """Count ``rows`` more as done and report."""
        self.rows += rows
        if self.progress is not None:
            seconds = time.perf_counter() - self.started
            self.progress(CrmProgress(self.section, self.phase, self.rows, self.total, seconds))

    def counted(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """``batches`` unchanged, reporting after each one is read (one call per batch, never per row)."""
        for batch in batches:
            self.add(batch.num_rows)
            yield batch


# --- small SQL helpers ---------------------------------------------------------------------------------
def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_path(path: str) -> str:
    return "$" + "".join('."' + part.replace('"', '\\"') + '"' for part in path.split("."))


def _stage(
    con: duckdb.DuckDBPyConnection, name: str, batches: Iterable[pa.RecordBatch], columns: list[str], extra: str = ""
) -> int:
    """Stream ``batches`` into temp table ``name`` (columns renamed to ``columns``); returns its row count.

    ``extra`` adds computed columns (SQL select items over the rows as ``r``, with a leading comma).
    """
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
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT *{extra} FROM __crm_in r")
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
    empty = _REJECT_SCHEMA.empty_table()
    # A full read that rejected nothing resolves every open reject (their rows are now accepted and unchanged).
    result.resolved_rejects = store.record_rejects(section.name, run_id, empty, resolve_others=full_read)
    result.log.append(f"received: 0 inserted, 0 updated, {result.unchanged} unchanged, 0 rejected")
    return result


#: Part of every row hash: bump it when receive's conversion rules change, so rows accepted under the old
#: rules are read into the store again once (2: trimmed keys, normalised emails, DECIMAL money).
_RULES_VERSION = 2
#: Columns of the reject table handed to ModelStore.record_rejects.
_REJECT_SCHEMA = pa.schema(
    [("key", pa.string()), ("fingerprint", pa.string()), ("reason", pa.string()), ("value", pa.string())]
)


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
    return f"hash({_lit(fingerprint)}, {', '.join(f'r.{q(c)}' for c in columns)})"


def _source_hash(columns: list[str]) -> str:
    """SQL hashing a staged source row's values alone: the stable part of a reject's fingerprint."""
    return f"hash({', '.join(f'r.{q(c)}' for c in columns)})"


def _is_email_key(section: CrmSection) -> bool:
    spec = section.model.field(section.planhat_key)
    return spec is not None and spec.type is FieldType.EMAIL


def _key_sql(section: CrmSection, raw_key: str) -> str:
    """SQL for the key a warehouse key value matches by: trimmed, and for an email also lower-cased."""
    return email_sql(raw_key) if _is_email_key(section) else trim_sql(raw_key)


def _key_error(section: CrmSection, raw_key: str, key: str) -> str:
    """SQL for the reason a row's key is unusable (null/empty, not an email, duplicate), NULL when fine."""
    column = _lit(repr(section.warehouse_key))
    rows_of_key = f"count(*) OVER (PARTITION BY {key})"
    email = _is_email_key(section)
    # Say why two rows count as one key when the warehouse spells them differently (' C-1' and 'C-1').
    spelled = f"min({raw_key}) OVER (PARTITION BY {key}) <> max({raw_key}) OVER (PARTITION BY {key})"
    ignoring = _lit(f" (ignoring {'case and ' if email else ''}surrounding spaces)")
    reason = _email_reason("field email", trim_sql(raw_key))
    not_email = f"WHEN NOT regexp_full_match({key}, {_lit(EMAIL_PATTERN)}) THEN {reason} " if email else ""
    return (
        f"CASE WHEN {key} IS NULL THEN 'key column ' || {column} || ' is null or empty' {not_email}"
        f"WHEN {rows_of_key} > 1 THEN 'duplicate key: column ' || {column} || ' holds ''' || {key} || '''' || "
        f"CASE WHEN {spelled} THEN {ignoring} ELSE '' END || ' in ' || {rows_of_key} || ' rows' END"
    )


def _rejects(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """One reject record per rejected row of ``__crm_rows`` (the columns ModelStore.record_rejects takes).

    The fingerprint is the hash of the row's source values plus ``#<n>``, its occurrence among identical
    rows, so two identical bad rows are two records and an unchanged bad row keeps its record run to run.
    """
    return con.sql(
        f"SELECT COALESCE(__key, {_lit(NULL_KEY)}) AS \"key\", printf('%016x', __hash) || '#' || "
        "row_number() OVER (PARTITION BY __hash ORDER BY __err, __value) AS fingerprint, __err AS reason, "
        '__value AS "value" FROM __crm_rows WHERE __err IS NOT NULL'
    ).to_arrow_table()


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
    shown: str = "NULL"  # SQL text of the offending value, recorded with the reject


@dataclass(frozen=True)
class _Source:
    """SQL for one mapped warehouse column, read as JSON, as text and as the value a cast starts from."""

    raw: str
    js: str
    text: str
    typed: str
    not_json: str | None  # true when a column that must hold JSON text does not

    @property
    def shown(self) -> str:
        return f"left({self.text}, 100)"


def _source(fm: FieldMapping, kind: ColumnKind) -> _Source:
    raw = f"r.{q(fm.warehouse)}"
    js_raw = f"TRY_CAST({raw} AS JSON)"

    def json_text(js: str) -> str:
        # A JSON string becomes its text; an object or array stays readable JSON text, never a repr.
        return f"(CASE WHEN json_type({js}) = 'VARCHAR' THEN {js} ->> '$' ELSE CAST({js} AS VARCHAR) END)"

    if fm.path:
        picked = f"json_extract({js_raw}, {_lit(_json_path(fm.path))})"
        js = f"(CASE WHEN json_type({picked}) = 'NULL' THEN NULL ELSE {picked} END)"
        return _Source(raw, js, json_text(js), json_text(js), f"{raw} IS NOT NULL AND {js_raw} IS NULL")
    if kind is ColumnKind.JSON:
        js = f"(CASE WHEN json_type({js_raw}) = 'NULL' THEN NULL ELSE {js_raw} END)"
        return _Source(raw, js, json_text(js), json_text(js), None)
    if fm.planhat == "custom" and kind is ColumnKind.TEXT:
        # JSON objects kept in a text column (issue 12): parse the text; a blank one holds nothing.
        parsed = f"TRY_CAST({trim_sql(raw)} AS JSON)"
        js = f"(CASE WHEN json_type({parsed}) = 'NULL' THEN NULL ELSE {parsed} END)"
        return _Source(raw, js, f"CAST({raw} AS VARCHAR)", raw, f"{trim_sql(raw)} IS NOT NULL AND {parsed} IS NULL")
    return _Source(raw, f"to_json({raw})", f"CAST({raw} AS VARCHAR)", raw, None)


def _number_error(where: str, src: _Source, value: str, spec_type: FieldType) -> str:
    """SQL for the reason a numeric value is refused: not a number, NaN, infinite or out of range.

    A DOUBLE holds NaN and infinities and text such as '1e400' casts to one, but none is a value Planhat
    can store or add up (an infinite license MRR made its company's MRR infinite), so each is rejected
    with the field named.
    """
    num = f"TRY_CAST({src.typed} AS DOUBLE)"
    quoted = f"{_lit(where + ': ' + chr(39))} || {src.shown} || {_lit(chr(39))}"
    if spec_type is FieldType.MONEY:
        limit = f"money holds at most {MONEY_INTEGER_DIGITS} digits before the decimal point"
    else:
        limit = "beyond the range of a DOUBLE"
    spelled_inf = f"regexp_full_match(lower(trim({src.text})), '[+-]?inf(inity)?')"
    return (
        f"WHEN {src.text} IS NULL THEN NULL "
        f"WHEN {num} IS NULL AND {value} IS NULL THEN {quoted} || {_lit(' is not ' + _TYPE_WORDS[spec_type])} "
        f"WHEN isnan({num}) THEN {quoted} || ' is NaN (not a number)' "
        f"WHEN isinf({num}) AND {spelled_inf} THEN {quoted} || ' is infinite (only finite numbers are accepted)' "
        f"WHEN {value} IS NULL OR isinf({num}) THEN {quoted} || {_lit(' is out of range (' + limit + ')')} "
    )


def _standard_plan(section: CrmSection, fm: FieldMapping, kind: ColumnKind, src: _Source, bad_json: str) -> _Plan:
    spec = section.model.field(fm.planhat)
    assert spec is not None  # config validated it
    where = f"field {fm.planhat}"
    json_check = f"WHEN {src.not_json} THEN {bad_json} " if src.not_json else ""
    if spec.type is FieldType.TEXT:
        error = f"CASE {json_check}END" if json_check else None
        return _Plan(fm, src.text, error, shown=src.shown)
    if spec.type is FieldType.EMAIL:
        value = email_sql(src.text)
        error = (
            f"CASE {json_check}WHEN {value} IS NOT NULL AND NOT regexp_full_match({value}, {_lit(EMAIL_PATTERN)}) "
            f"THEN {_email_reason(where, trim_sql(src.text))} END"
        )
        return _Plan(fm, value, error, shown=src.shown)
    if spec.type is FieldType.JSON:
        value = src.js if (kind is ColumnKind.JSON or fm.path) else f"TRY_CAST({src.raw} AS JSON)"
    else:
        value = f"TRY_CAST({src.typed} AS {spec.type.duckdb_type})"
    if spec.type in (FieldType.NUMBER, FieldType.MONEY):
        checks = _number_error(where, src, value, spec.type)
    else:
        checks = (
            f"WHEN {src.text} IS NOT NULL AND {value} IS NULL THEN {_lit(where + ': ' + chr(39))} || {src.shown} || "
            f"{_lit(chr(39) + ' is not ' + _TYPE_WORDS[spec.type])} "
        )
    return _Plan(fm, value, f"CASE {json_check}{checks}END", shown=src.shown)


def _email_reason(where: str, shown: str) -> str:
    """SQL for the reason an email is refused, naming the field and the (trimmed) value."""
    rule = (
        " is not an email address (expected one '@' with text before it, a domain with a dot after it, and no spaces)"
    )
    return f"{_lit(where + ': ' + chr(39))} || {shown} || {_lit(chr(39) + rule)}"


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
        kind = info.column(fm.warehouse).kind
        src = _source(fm, kind)
        where = f"field {fm.planhat}"
        bad_json = f"{_lit(where + ': column ' + repr(fm.warehouse) + ' does not hold valid JSON')}"
        if fm.planhat == "custom":
            error: str | None = (
                f"CASE WHEN {src.not_json or 'FALSE'} THEN {bad_json} "
                f"WHEN {src.js} IS NOT NULL AND json_type({src.js}) <> 'OBJECT' THEN "
                f"{_lit(where + ': column ' + repr(fm.warehouse) + ' holds ')} || lower(json_type({src.js})) || "
                f"{_lit(', not a JSON object whose keys become custom fields')} END"
            )
            value = f"(CASE WHEN json_type({src.js}) = 'OBJECT' THEN {src.js} END)"
            plans.append(_Plan(fm, value, error, shown=src.shown))
        elif fm.is_custom:
            checks = f"WHEN {src.not_json} THEN {bad_json} " if src.not_json else ""
            if kind is ColumnKind.FLOAT and not fm.path:
                # JSON has no NaN or infinity: such a number would make the stored custom fields invalid JSON.
                checks += _number_error(where, src, src.raw, FieldType.NUMBER)
            plans.append(_Plan(fm, src.js, f"CASE {checks}END" if checks else None, shown=src.shown))
        elif _is_relation(section, fm):
            plans.append(_relation_plan(section, fm, i, src.text))
        else:
            plans.append(_standard_plan(section, fm, kind, src, bad_json))
    return plans


def _relation_plan(section: CrmSection, fm: FieldMapping, i: int, text: str) -> _Plan:
    match = section.company_match
    alias = f"__rel{i}"
    ref = trim_sql(text)  # references match exactly after trimming, like keys
    join = (
        f"LEFT JOIN (SELECT {trim_sql(f'CAST(c.{q(match)} AS VARCHAR)')} AS ref, min(c.id) AS id, count(*) AS n "
        f"FROM company c WHERE c.{q(match)} IS NOT NULL GROUP BY 1) AS {alias} ON {alias}.ref = {ref}"
    )
    where = f"field {fm.planhat}: "
    # A parent arriving in this same batch is found by the section key when company_match is that key.
    in_batch = fm.planhat == "parentId" and match == section.planhat_key
    batch_hit = f"{ref} IN (SELECT __key FROM __crm_keys)" if in_batch else "FALSE"
    error = (
        f"CASE WHEN {ref} IS NULL THEN NULL "
        f"WHEN {alias}.n > 1 THEN {_lit(where + match + ' ' + chr(39))} || {ref} || "
        f"{_lit(chr(39) + ' matches ')} || {alias}.n || ' companies' "
        f"WHEN {alias}.id IS NULL AND NOT ({batch_hit}) THEN "
        f"{_lit(where + 'no company has ' + match + ' ' + chr(39))} || {ref} || "
        f"{_lit(chr(39) + ' (sync the companies first, or fix the reference)')} END"
    )
    value = f"COALESCE({alias}.id, CASE WHEN {batch_hit} THEN {_lit(_PENDING_PARENT)} || {ref} END)"
    return _Plan(fm, value, error, join, pending=ref if in_batch else None, shown=f"left({text}, 100)")


def _custom_patch(section: CrmSection, plans: list[_Plan]) -> str | None:
    """SQL for the row's custom-field JSON patch, or None when the section maps no custom field."""
    named = [(p.fm.custom_name, f"v{i}") for i, p in enumerate(plans) if p.fm.custom_name]
    wholes = [f"v{i}" for i, p in enumerate(plans) if p.fm.planhat == "custom"]
    if not named and not wholes:
        return None
    empty = "CAST([] AS STRUCT(key VARCHAR, value JSON)[])"
    names = ", ".join(_lit(str(n)) for n, _ in named)
    # A named custom field wins over the same key of a whole object. (Without named fields there is no
    # filter: "NOT IN (NULL)" is NULL, which used to drop every key of the object.)
    keep = f"lambda e: e.key NOT IN ({names})" if named else "lambda e: TRUE"
    parts = [
        f"COALESCE(list_filter(map_entries(TRY_CAST({w} AS MAP(VARCHAR, JSON))), {keep}), {empty})" for w in wholes
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
    progress: CrmProgressFn | None = None,
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
        total = change_set.rows.num_rows if change_set is not None else None
        batches = _Reporter(section.name, progress, "read", total).counted(batches)
        raw_key = f"CAST(r.{q(section.warehouse_key)} AS VARCHAR)"
        # The normalised key, computed once while staging: every match below uses it.
        result.rows_read = _stage(con, "__crm_src", batches, columns, f", {_key_sql(section, raw_key)} AS __nkey")
        result.log.append(
            f"read {result.rows_read} rows from '{section.table}'"
            + (f" changed since cursor {cursor_before}" if change_set is not None else " (full read)")
        )
        key = "r.__nkey"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __crm_keys AS SELECT {key} AS __key FROM __crm_src r "
            f"WHERE {key} IS NOT NULL GROUP BY 1 HAVING count(*) = 1"
        )
        # Rows whose source values are unchanged since this section last accepted them skip all work below;
        # a full sync (the "Full sync" button) compares every row with the store again.
        row_hash = _row_hash(section, columns)
        con.execute(
            'CREATE OR REPLACE TEMP TABLE __crm_skip AS SELECT h."key" AS __key FROM __crm_src r '
            f'JOIN crm_source_hashes h ON h.section = ? AND h."key" = {key} AND h.hash = {row_hash} '
            'WHERE h."key" IN (SELECT __key FROM __crm_keys) AND NOT ?',
            [section.name, full],
        )
        skipped = int(con.execute("SELECT count(*) FROM __crm_skip").fetchall()[0][0])
        if skipped:
            con.execute(f"DELETE FROM __crm_src r WHERE {key} IN (SELECT __key FROM __crm_skip)")
            result.log.append(f"{skipped} rows unchanged in the warehouse since the last sync: skipped")
        if skipped and skipped == result.rows_read:
            return _nothing_changed(section, store, result, run_id, new_cursor, full_read=change_set is None)
        key_error = _key_error(section, raw_key, key)
        field_errors = [p.error for p in plans if p.error]
        field_error = f"NULLIF(concat_ws('; ', {', '.join(field_errors)}), '')" if field_errors else "NULL"
        # The offending value recorded with a reject: the key's for a key error, else the first bad field's.
        bad_values = " ".join(f"WHEN ({p.error}) IS NOT NULL THEN {p.shown}" for p in plans if p.error)
        field_value = f"CASE {bad_values} END" if bad_values else "NULL"
        values = ", ".join(f"{p.value} AS v{i}" for i, p in enumerate(plans))
        pendings = [p.pending for p in plans if p.pending]
        joins = " ".join(p.join for p in plans)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE __crm_rows AS SELECT * EXCLUDE (__field_value), "
            "COALESCE(__key_error, __field_error) AS __err, "
            "CASE WHEN __key_error IS NOT NULL THEN left(__raw_key, 100) ELSE __field_value END AS __value "
            f"FROM (SELECT {key} AS __key, {raw_key} AS __raw_key, {key_error} AS __key_error, "
            f"{field_error} AS __field_error, {field_value} AS __field_value, {_source_hash(columns)} AS __hash"
            f"{', ' + values if values else ''}, {pendings[0] if pendings else 'NULL'} AS __parent "
            f"FROM __crm_src r {joins})"
        )
        if pendings:
            # A child whose in-batch parent was rejected cannot be linked: reject it too (to a fixed point).
            while True:
                changed = con.execute(
                    "UPDATE __crm_rows AS c SET __err = 'field parentId: parent ''' || c.__parent || "
                    "''' was rejected in this run', __value = c.__parent FROM __crm_rows AS p WHERE c.__err IS NULL "
                    "AND p.__err IS NOT NULL AND p.__key = c.__parent AND c.v"
                    + str(next(i for i, p in enumerate(plans) if p.pending))
                    + f" LIKE {_lit(_PENDING_PARENT + '%')}"
                ).fetchall()[0][0]
                if not changed:
                    break
        stats = con.execute(
            "SELECT count(*) FILTER (WHERE __key_error IS NULL), string_agg(DISTINCT __key_error, '; ') FROM __crm_rows"
        ).fetchall()[0]
        rejects = _rejects(con)
        result.rejected = rejects.num_rows  # one record per rejected row, so the counter is the records written
        if result.rows_read and not stats[0] and not skipped:
            store.record_rejects(section.name, run_id, rejects, resolve_others=False)
            raise KeyValidationError(
                f"section '{section.name}': none of the {result.rows_read} rows of '{section.table}' has a usable "
                f"key in column '{section.warehouse_key}' ({stats[1]}). Fix: make '{section.warehouse_key}' unique "
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
        # Validation and the write are single statements: a line between them keeps a long run visibly moving.
        checked = _Reporter(section.name, progress, "validate", result.rows_read - skipped)
        checked.add(result.rows_read - skipped)
        writing = _Reporter(section.name, progress, "write")
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
                f"INSERT INTO crm_source_hashes SELECT ?, {key}, {row_hash} FROM __crm_src r "
                f"WHERE {key} IN (SELECT __key FROM __crm_rows WHERE __err IS NULL)",
                [section.name],
            )
            counts = UpsertCounts(counts.inserted, counts.updated, counts.unchanged + skipped)
            if pendings:
                con.execute(
                    f'UPDATE company AS t SET "parentId" = c.id FROM company AS c WHERE starts_with(t."parentId", '
                    f"{_lit(_PENDING_PARENT)}) AND {trim_sql(f'CAST(c.{q(section.company_match)} AS VARCHAR)')} = "
                    f'substr(t."parentId", {len(_PENDING_PARENT) + 1})'
                )
            if section.model.slug in ("license", "company"):
                store.refresh_company_fields()
            if new_cursor is not None:
                store.set_cursor(section.name, "", new_cursor)
        # The upsert is one statement, so its progress is one line once it has committed.
        writing.total = counts.inserted + counts.updated + counts.unchanged - skipped
        writing.add(writing.total)
        result.inserted, result.updated, result.unchanged = counts.inserted, counts.updated, counts.unchanged
        if new_cursor is not None:
            result.cursor_after = new_cursor
        scope: list[str] | None = None
        if change_set is not None:
            # Every key this partial read saw: an open reject of one of them that was not recorded again
            # (accepted now, or rejected with other values) is resolved. Null keys are never in scope: a
            # partial read does not see every null-key row.
            scope = [k for (k,) in con.sql("SELECT DISTINCT __key FROM __crm_rows WHERE __key IS NOT NULL").fetchall()]
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
    progress: CrmProgressFn | None = None,
) -> CrmResult:
    """Write the store's send fields of ``section`` to its warehouse table, new or changed records only.

    Args:
        section: The sync section (its direction must include send).
        store: The model store.
        warehouse: The section's warehouse.
        run_id: The sync-log run id (kept for symmetry with :func:`receive`).
        batch_size: Rows per merge batch.
        progress: Called after every batch of the target read for the comparison (phase ``read``) and
            after every merge batch (phase ``send``).

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
            # Exact all the way: a DOUBLE would round 1234567890123456.78 to ...456.80 before the warehouse
            # cast it back. Scale as the column's (capped so 26 digits stay before the point).
            scale = MONEY_SCALE if col.scale is None else min(col.scale, _MAX_SEND_SCALE)
            target = "BIGINT" if col.scale == 0 else f"DECIMAL(38,{scale})"
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
        target_rows = _Reporter(section.name, progress, "read").counted(
            warehouse.read_batches(section.table, wh_cols, batch_size=batch_size)
        )
        _stage(con, "__crm_wh", target_rows, wh_cols)

        def wh_value(c: str) -> str:
            t = kinds[c]
            return f"json(TRY_CAST(w.{q(c)} AS JSON))" if t == "JSON" else f"TRY_CAST(w.{q(c)} AS {t})"

        def new_value(c: str) -> str:
            s = f"json(s.{q(c)})" if kinds[c] == "JSON" else f"s.{q(c)}"
            return s if section.null_overwrites else f"COALESCE({s}, {wh_value(c)})"

        # Keys match trimmed (emails also case-insensitively), as on receive; a matched row is written
        # back under the warehouse's own spelling of its key, so the MERGE updates it instead of adding one.
        wh_key = _key_sql(section, f"CAST(__crm_wh.{q(wkey)} AS VARCHAR)")
        store_key = _key_sql(section, f"s.{q(wkey)}")
        outs = [f"COALESCE(CAST(w.{q(wkey)} AS VARCHAR), s.{q(wkey)}) AS {q(wkey)}"] + [
            f"CAST({new_value(c)} AS {'VARCHAR' if kinds[c] == 'JSON' else kinds[c]}) AS {q(c)}" for c in kinds
        ]
        differs = " OR ".join(f"{new_value(c)} IS DISTINCT FROM {wh_value(c)}" for c in kinds)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __crm_out AS SELECT row_number() OVER () AS __i, {', '.join(outs)} "
            f"FROM __crm_send s LEFT JOIN (SELECT *, {wh_key} AS __wkey FROM __crm_wh "
            f"QUALIFY count(*) OVER (PARTITION BY {wh_key}) = 1) w "
            f"ON w.__wkey = {store_key} WHERE w.{q(wkey)} IS NULL OR {differs}"
        )
        total = int(con.execute("SELECT count(*) FROM __crm_send").fetchall()[0][0])
        pending = int(con.execute("SELECT count(*) FROM __crm_out").fetchall()[0][0])
        names = ", ".join(q(c) for c in [wkey, *kinds])
        sending = _Reporter(section.name, progress, "send", pending)
        for start in range(0, pending, batch_size):
            chunk = con.sql(
                f"SELECT {names} FROM __crm_out WHERE __i > {start} AND __i <= {start + batch_size}"
            ).to_arrow_table()
            merged = warehouse.merge(section.table, chunk, wkey, batch_size=batch_size)
            result.sent += merged.inserted + merged.updated
            sending.add(chunk.num_rows)
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
    progress: CrmProgressFn | None = None,
) -> CrmResult:
    """Run one section: receive then send (as its direction says), logged in the store's sync log.

    ``progress`` is called as :func:`receive` and :func:`send` describe (every batch read, the store
    write, every merge batch), so a long run shows movement in its log.

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
            received = receive(
                section, store, warehouse, run_id=run_id, full=full, batch_size=batch_size, progress=progress
            )
            result = result.combine(received)
        if section.direction.sends:
            sent = send(section, store, warehouse, run_id=run_id, batch_size=batch_size, progress=progress)
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
