"""Usage sync: User Activities and Custom Metrics pulled one way by an incrementing numeric key.

Exactly-once, by construction:

- The store's primary key for usage rows is ``(section, key)``; rows insert with an anti-join on it, so
  re-reading a key (a retry, a re-run, the lookback) never duplicates it.
- Each range (partition) is read in key order, in batches. One store transaction holds a batch's
  rows, its rejects and the range's cursor (``sync_cursors``: section, range key -> last key loaded).
  A crash before COMMIT leaves nothing of the batch; after COMMIT the cursor covers exactly what landed.
- A retry resumes after the range's cursor (minus the section's ``lookback``), so it neither skips
  nor repeats work.

Row validation happens in DuckDB SQL over the whole batch: null, negative, fractional or over-long
(> 32 digits) keys, keys that occur twice in the source range, missing or unknown record
references, and unconvertible dates or values are rejected with a reason into ``rejected_rows``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from planhat_pipelines.config import UsageSection
from planhat_pipelines.errors import KeyValidationError
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.schema import USAGE_TABLES, q
from planhat_pipelines.sync.ranges import KEY_DIGITS, KeyRangeSpan, range_of, ranges_between
from planhat_pipelines.warehouses.base import ColumnKind, KeyRange, TableInfo, Warehouse

_KEY_KINDS = (ColumnKind.INTEGER, ColumnKind.DECIMAL, ColumnKind.FLOAT)


@dataclass
class UsageResult:
    """What one usage run did, over all the ranges it loaded."""

    section: str
    rows_read: int = 0
    inserted: int = 0
    unchanged: int = 0
    rejected: int = 0
    resolved_rejects: int = 0
    batches: int = 0
    cursor_before: int | None = None
    cursor_after: int | None = None
    ranges: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def metadata(self) -> dict[str, float | int | str]:
        return {
            "rows_read": self.rows_read,
            "inserted": self.inserted,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "resolved_rejects": self.resolved_rejects,
            "batches": self.batches,
            "ranges": len(self.ranges),
            "cursor_before": "" if self.cursor_before is None else str(self.cursor_before),
            "cursor_after": "" if self.cursor_after is None else str(self.cursor_after),
            "duration_seconds": round(self.seconds, 3),
        }


def check_source(section: UsageSection, warehouse: Warehouse) -> TableInfo:
    """Describe the section's table and check its columns before anything is read or written.

    Raises:
        WarehouseError: the table or a mapped column does not exist.
        KeyValidationError: the key column is not numeric.
    """
    info = warehouse.describe(section.table)
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
    """Ranges that may hold rows not loaded yet, and the warehouse's current maximum key (-1 when empty)."""
    bounds = warehouse.key_bounds(section.table, section.key)
    if bounds is None:
        return [], -1
    low, high = bounds
    loaded = loaded_through(store, section)
    start = loaded + 1 if loaded is not None else low
    if start > high:
        return [], high
    return ranges_between(start, high, section.partition_span), high


def loaded_through(store: ModelStore, section: UsageSection) -> int | None:
    """The highest key any range of the section has committed."""
    cursors = store.cursors(section.name)
    return max((int(v) for v in cursors.values()), default=None)


def _staging_select(section: UsageSection, names: Sequence[str]) -> str:
    """Project the raw batch columns onto the usage roles (``__key``, ``record``, ``date`` ...)."""
    cols = {"__key": q(section.key)}
    for role, column in section.fields.items():
        cols[role] = q(column)
    present = {n.lower(): n for n in names}
    parts = []
    for alias, quoted in cols.items():
        raw = quoted.strip('"')
        parts.append(f"b.{q(present.get(raw.lower(), raw))} AS {q(alias)}")
    return ", ".join(parts)


def _reason_sql(section: UsageSection) -> str:
    """One CASE expression giving each row's first rejection reason (NULL when the row is good)."""
    model = section.model
    match = section.record_match
    # Column names end up inside SQL string literals: double any quote they contain.
    fields = {role: column.replace("'", "''") for role, column in section.fields.items()}
    checks = [
        ("s.__key IS NULL", "'null key'"),
        ("s.__key < 0", "'key ' || CAST(s.__key AS VARCHAR) || ' is negative'"),
        ("s.__key <> floor(s.__key)", "'key ' || CAST(s.__key AS VARCHAR) || ' is not a whole number'"),
        (
            f"length(CAST(CAST(s.__key AS HUGEINT) AS VARCHAR)) > {KEY_DIGITS}",
            f"'key ' || CAST(CAST(s.__key AS HUGEINT) AS VARCHAR) || ' is longer than {KEY_DIGITS} characters'",
        ),
        (
            "d.dup_key IS NOT NULL",
            "'key ' || CAST(CAST(s.__key AS HUGEINT) AS VARCHAR) || ' occurs more than once in the source'",
        ),
        ("s.record IS NULL", "'missing " + model.name + " reference (" + fields["record"] + ")'"),
        ("s.date IS NULL", "'missing date (" + fields["date"] + ")'"),
        (
            "TRY_CAST(s.date AS TIMESTAMP) IS NULL",
            "'date ' || CAST(s.date AS VARCHAR) || ' is not a timestamp (" + fields["date"] + ")'",
        ),
    ]
    if section.kind == "metrics":
        checks += [
            ("s.dimension IS NULL", "'missing dimension (" + fields["dimension"] + ")'"),
            (
                "TRY_CAST(s.value AS DOUBLE) IS NULL",
                "'value ' || COALESCE(CAST(s.value AS VARCHAR), 'NULL') || ' is not a number ("
                + fields["value"]
                + ")'",
            ),
        ]
    else:
        checks.append(("s.action IS NULL", "'missing action (" + fields["action"] + ")'"))
        if "info" in section.fields:
            checks.append(
                (
                    "s.info IS NOT NULL AND NOT json_valid(CAST(s.info AS VARCHAR))",
                    "'info is not JSON (" + fields["info"] + ")'",
                )
            )
        for role in ("count", "weight"):
            if role in section.fields:
                checks.append(
                    (
                        f"s.{role} IS NOT NULL AND TRY_CAST(s.{role} AS DOUBLE) IS NULL",
                        f"'{role} ' || CAST(s.{role} AS VARCHAR) || ' is not a number (" + fields[role] + ")'",
                    )
                )
    if section.unknown_reference == "reject":
        checks.append(
            ("r.id IS NULL", f"'unknown {model.slug} ' || CAST(s.record AS VARCHAR) || ' (matched by {match})'")
        )
    return "CASE " + " ".join(f"WHEN {cond} THEN {reason}" for cond, reason in checks) + " END"


def _not_loaded(table: str) -> str:
    """Anti-join on the store's primary key: keys already loaded (a retry, a re-run, the lookback) are skipped.

    Accepted keys are unique within a batch (keys that occur twice in the source are rejected), so this is
    exact; a conflict that still slipped through would fail the batch on the primary key, never duplicate it.
    """
    return f'NOT EXISTS (SELECT 1 FROM {table} t WHERE t.section = ? AND t."key" = CAST(u.__key AS HUGEINT))'


def _prepare_refs(section: UsageSection, store: ModelStore) -> None:
    """Index the section's records by the matched field once, not per batch (``__usage_refs``)."""
    model = section.model
    company = "id" if model.slug == "company" else '"companyId"'
    match = q(section.record_match)
    store.con.execute(
        "CREATE OR REPLACE TEMP TABLE __usage_refs AS "
        f"SELECT CAST({match} AS VARCHAR) AS ref, min(id) AS id, min({company}) AS company_id "
        f"FROM {q(model.slug)} WHERE {match} IS NOT NULL GROUP BY 1"
    )


def _load_batch(
    section: UsageSection, store: ModelStore, batch: pa.RecordBatch, duplicates: pa.Table, run_id: str
) -> tuple[int, int, int, int]:
    """Validate and insert one batch; returns (inserted, unchanged, rejected, resolved). In the caller's transaction.

    The common case (every row valid and new) costs one INSERT over the validating view; only a batch with
    rejects or already-loaded rows is materialised to count them and record the rejects.
    """
    con = store.con
    con.register("__usage_batch", batch)
    con.register("__usage_dups", duplicates)
    try:
        con.execute(
            "CREATE OR REPLACE TEMP VIEW __usage_rows AS "
            f"WITH s AS (SELECT {_staging_select(section, batch.schema.names)} FROM __usage_batch b) "
            f"SELECT s.*, r.id AS __record_id, r.company_id AS __company_id, {_reason_sql(section)} AS __reason "
            "FROM s LEFT JOIN __usage_refs r ON r.ref = CAST(s.record AS VARCHAR) "
            "LEFT JOIN (SELECT CAST(key AS HUGEINT) AS dup_key FROM __usage_dups) d "
            "ON d.dup_key = TRY_CAST(s.__key AS HUGEINT)"
        )
        inserted = int(
            con.execute(_insert_sql(section), [section.name, section.model.slug, run_id, section.name]).fetchall()[0][0]
        )
        if inserted == batch.num_rows:
            accepted, rejected, checked = inserted, 0, "__usage_rows"
        else:
            checked = "__usage_checked"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {checked} AS SELECT * FROM __usage_rows")
            accepted, rejected = con.execute(
                "SELECT count(*) FILTER (WHERE __reason IS NULL), count(*) FILTER (WHERE __reason IS NOT NULL) "
                f"FROM {checked}"
            ).fetchall()[0]
        if rejected:
            rejects = con.sql(
                "SELECT COALESCE(CAST(TRY_CAST(__key AS HUGEINT) AS VARCHAR), "
                "'(null key) ' || CAST(record AS VARCHAR)) AS \"key\", __reason AS reason "
                f"FROM {checked} WHERE __reason IS NOT NULL"
            ).to_arrow_table()
            store.record_rejects(section.name, run_id, rejects, resolve_others=False)
        resolved = 0
        if _has_open_rejects(store, section, run_id):
            resolved = con.execute(
                "UPDATE rejected_rows SET resolved_at = now() WHERE section = ? AND resolved_at IS NULL "
                'AND run_id IS DISTINCT FROM ? AND "key" IN '
                f"(SELECT CAST(CAST(__key AS HUGEINT) AS VARCHAR) FROM {checked} WHERE __reason IS NULL)",
                [section.name, run_id],
            ).fetchall()[0][0]
        con.execute("DROP VIEW __usage_rows")
        con.execute("DROP TABLE IF EXISTS __usage_checked")
    finally:
        con.unregister("__usage_batch")
        con.unregister("__usage_dups")
    return inserted, int(accepted) - inserted, int(rejected), int(resolved)


def _insert_sql(section: UsageSection) -> str:
    """INSERT of the valid, not yet loaded rows of ``__usage_rows`` (params: section, model, run id, section)."""
    common = "SELECT ?, CAST(__key AS HUGEINT), ?, __record_id, __company_id, CAST(record AS VARCHAR), "
    if section.kind == "activities":
        info = "CAST(info AS JSON)" if "info" in section.fields else "NULL"
        count = "TRY_CAST(count AS DOUBLE)" if "count" in section.fields else "1.0"
        weight = "TRY_CAST(weight AS DOUBLE)" if "weight" in section.fields else "1.0"
        columns = (
            f"CAST(action AS VARCHAR), TRY_CAST(date AS TIMESTAMP), COALESCE({count}, 1.0), "
            f"COALESCE({weight}, 1.0), {info}"
        )
    else:
        columns = "CAST(dimension AS VARCHAR), TRY_CAST(value AS DOUBLE), TRY_CAST(date AS TIMESTAMP)"
    table = USAGE_TABLES[section.kind]
    return (
        f"INSERT INTO {table} {common} {columns}, ? FROM __usage_rows u WHERE __reason IS NULL AND {_not_loaded(table)}"
    )


def _has_open_rejects(store: ModelStore, section: UsageSection, run_id: str) -> bool:
    """Whether earlier runs left rejects that this batch might resolve (usually none: skip the UPDATE)."""
    rows = store.con.execute(
        "SELECT count(*) FROM rejected_rows WHERE section = ? AND resolved_at IS NULL AND run_id IS DISTINCT FROM ?",
        [section.name, run_id],
    ).fetchall()
    return bool(rows[0][0])


def load_range(
    section: UsageSection,
    store: ModelStore,
    warehouse: Warehouse,
    span: KeyRangeSpan,
    *,
    run_id: str,
    reread: bool = False,
    result: UsageResult | None = None,
    info: TableInfo | None = None,
) -> UsageResult:
    """Load one key range in batches; each batch commits with the range's cursor.

    Args:
        reread: Read the whole range again instead of resuming after its cursor (idempotent).
    """
    result = result or UsageResult(section.name)
    info = info or check_source(section, warehouse)
    _prepare_refs(section, store)
    scope = span.partition_key
    cursor = store.get_cursor(section.name, scope)
    after = span.start - 1
    if cursor is not None and not reread:
        after = max(after, int(cursor) - section.lookback)
    key_range = KeyRange(section.key, after=after, through=span.end)
    dup_keys = warehouse.duplicate_keys(section.table, key_range)
    duplicates = pa.table({"key": pa.array([str(k) for k in dup_keys], pa.string())})
    columns = [section.key, *dict.fromkeys(section.fields.values())]
    for batch in warehouse.read_batches(section.table, columns, batch_size=section.batch_size, key_range=key_range):
        if batch.num_rows == 0:
            continue
        with store.transaction():
            inserted, unchanged, rejected, resolved = _load_batch(section, store, batch, duplicates, run_id)
            keys = pa.compute.max(batch.column(0)).as_py()
            if keys is not None:
                new_cursor = int(keys)
                old = store.get_cursor(section.name, scope)
                if old is None or new_cursor > int(old):
                    store.set_cursor(section.name, scope, str(new_cursor))
        result.rows_read += batch.num_rows
        result.inserted += inserted
        result.unchanged += unchanged
        result.rejected += rejected
        result.resolved_rejects += resolved
        result.batches += 1
    result.ranges.append(scope)
    return result


def _reject_null_keys(
    section: UsageSection, store: ModelStore, warehouse: Warehouse, run_id: str, result: UsageResult
) -> None:
    """Rows with a NULL key belong to no range: each run reads them (a filtered scan) and rejects them."""
    _prepare_refs(section, store)
    columns = [section.key, *dict.fromkeys(section.fields.values())]
    key_range = KeyRange(section.key, null_keys=True)
    empty = pa.table({"key": pa.array([], pa.string())})
    for batch in warehouse.read_batches(section.table, columns, batch_size=section.batch_size, key_range=key_range):
        if batch.num_rows:
            with store.transaction():
                _, _, rejected, _ = _load_batch(section, store, batch, empty, run_id)
            result.rows_read += batch.num_rows
            result.rejected += rejected
    # A null-key row that is gone from the source (fixed or deleted) is resolved.
    resolved = store.con.execute(
        "UPDATE rejected_rows SET resolved_at = now() WHERE section = ? AND resolved_at IS NULL "
        "AND reason = 'null key' AND run_id IS DISTINCT FROM ?",
        [section.name, run_id],
    ).fetchall()[0][0]
    result.resolved_rejects += int(resolved)


def _retry_rejects(
    section: UsageSection, store: ModelStore, warehouse: Warehouse, run_id: str, result: UsageResult
) -> None:
    """Read again the keys of open rejects (e.g. an end user that did not exist yet), per range.

    Rows already loaded are skipped, so this is idempotent; a reject whose row now passes is
    marked resolved by :func:`_load_batch`, one still failing is recorded again by this run.
    """
    _prepare_refs(section, store)
    rows = store.con.execute(
        'SELECT CAST("key" AS HUGEINT) FROM rejected_rows WHERE section = ? AND resolved_at IS NULL '
        'AND TRY_CAST("key" AS HUGEINT) IS NOT NULL',
        [section.name],
    ).fetchall()
    by_range: dict[KeyRangeSpan, list[int]] = {}
    for (key,) in rows:
        by_range.setdefault(range_of(int(key), section.partition_span), []).append(int(key))
    columns = [section.key, *dict.fromkeys(section.fields.values())]
    for keys in by_range.values():
        key_range = KeyRange(section.key, after=min(keys) - 1, through=max(keys))
        duplicates = pa.table(
            {"key": pa.array([str(k) for k in warehouse.duplicate_keys(section.table, key_range)], pa.string())}
        )
        for batch in warehouse.read_batches(section.table, columns, batch_size=section.batch_size, key_range=key_range):
            if batch.num_rows:
                with store.transaction():
                    inserted, _, _, resolved = _load_batch(section, store, batch, duplicates, run_id)
                result.inserted += inserted
                result.resolved_rejects += resolved


def run_usage(
    section: UsageSection,
    store: ModelStore,
    warehouse: Warehouse,
    spans: Iterable[KeyRangeSpan],
    *,
    dagster_run_id: str | None = None,
    reread: bool = False,
) -> UsageResult:
    """Load ``spans`` in key order, logging the run in the store's sync log."""
    started = time.perf_counter()
    result = UsageResult(section.name, cursor_before=loaded_through(store, section))
    run_id = store.start_run(
        section.name,
        "usage",
        dagster_run_id=dagster_run_id,
        cursor_before=None if result.cursor_before is None else str(result.cursor_before),
    )
    try:
        info = check_source(section, warehouse)
        _retry_rejects(section, store, warehouse, run_id, result)
        for span in sorted(spans):
            load_range(section, store, warehouse, span, run_id=run_id, reread=reread, result=result, info=info)
        _reject_null_keys(section, store, warehouse, run_id, result)
    except Exception as exc:
        result.seconds = time.perf_counter() - started
        store.finish_run(
            run_id,
            "failed",
            rows_read=result.rows_read,
            inserted=result.inserted,
            unchanged=result.unchanged,
            rejected=result.rejected,
            cursor_after=_str(loaded_through(store, section)),
            error=str(exc),
        )
        raise
    result.cursor_after = loaded_through(store, section)
    result.seconds = time.perf_counter() - started
    store.finish_run(
        run_id,
        "success",
        rows_read=result.rows_read,
        inserted=result.inserted,
        unchanged=result.unchanged,
        rejected=result.rejected,
        resolved_rejects=result.resolved_rejects,
        cursor_after=_str(result.cursor_after),
        notes=f"{len(result.ranges)} range(s), {result.batches} batch(es)",
    )
    return result


def _str(value: int | None) -> str | None:
    return None if value is None else str(value)
