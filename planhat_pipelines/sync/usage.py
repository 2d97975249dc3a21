"""Usage sync: User Activities and Custom Metrics pulled one way by an incrementing numeric key.

Exactly-once, by construction:

- The store's primary key for usage rows is ``(section, key)``; rows insert with an anti-join on it, so
  re-reading a key (a retry, a re-run, the lookback) never duplicates it.
- Each range (partition) is read in key order, in batches. One store transaction holds a batch's
  rows, its rejects, the range's cursor (``sync_cursors``: section, range key -> last key loaded) and the
  run's counts so far (``sync_runs``). A crash before COMMIT leaves nothing of the batch; after COMMIT the
  cursor and the sync log cover exactly what landed.
- A retry resumes after the range's cursor, so it neither skips nor repeats work. ``lookback: N`` re-reads
  the N keys below the section's loaded-through cursor on every run, whatever ranges they fall in, so a row
  committed late with a lower key is still loaded (once: the anti-join skips what is there).

Keys. A valid key is a whole number ``0 <= key < 10**32`` (see :class:`~planhat_pipelines.warehouses.base.KeyRange`);
a text key column is read through a safe cast. Rows whose key is not valid (null, negative, fractional,
non-finite, longer than 32 digits, text that is not digits, floats from 2**53 on) belong to no range: one
filtered scan per run reads them and rejects them as *permanent* rejects (no retry can fix them; a changed
row is a new reject and the old record is resolved).

Row validation happens in DuckDB SQL over the whole batch: invalid keys, keys that occur twice in the
source, missing or unknown record references (emails compared lower-cased and trimmed; other references
exactly), unconvertible dates, and values that are not finite numbers are rejected with a reason and the
offending value into ``rejected_rows``, one record per source row. Open rejects that are not permanent are
retried every run by reading exactly their keys, in batches of :data:`RETRY_KEYS_PER_READ`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from planhat_pipelines.config import UsageSection
from planhat_pipelines.errors import KeyValidationError
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.schema import USAGE_TABLES, q
from planhat_pipelines.sync.ranges import KEY_DIGITS, KeyRangeSpan, span_at
from planhat_pipelines.warehouses.base import FLOAT_KEY_LIMIT, KEY_LIMIT, ColumnKind, KeyRange, TableInfo, Warehouse

_KEY_KINDS = (ColumnKind.INTEGER, ColumnKind.DECIMAL, ColumnKind.FLOAT, ColumnKind.TEXT)
#: Keys of open rejects read per warehouse query when they are retried (a bound on the query's size).
RETRY_KEYS_PER_READ = 1_000


@dataclass(frozen=True)
class UsageProgress:
    """Where a running usage run is, after each committed batch.

    Attributes:
        section: The section's name.
        phase: ``retry``, ``lookback``, ``range`` or ``invalid keys``.
        rows_read: Rows read so far by the run.
        inserted: Rows inserted so far.
        rejected: Rows rejected so far.
        key: The highest key of the batch just committed (None in the invalid-keys scan).
        after: Where the current read started (exclusive; None when it has no lower bound).
        through: Where the current read ends: the range's end, or the source's highest key if that is lower
            (None when the read has no upper bound).
        seconds: Time since the run started.
        read_seconds: Time since the current read started.
    """

    section: str
    phase: str
    rows_read: int
    inserted: int
    rejected: int
    key: int | None
    after: int | None
    through: int | None
    seconds: float
    read_seconds: float

    @property
    def rate(self) -> float:
        """Rows read per second so far."""
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        """Time left in the current read, from its key speed so far (None when it cannot be told)."""
        if None in (self.key, self.after, self.through) or self.read_seconds <= 0:
            return None
        assert self.key is not None and self.after is not None and self.through is not None
        done = self.key - self.after
        return None if done <= 0 else max(self.through - self.key, 0) * self.read_seconds / done

    def describe(self) -> str:
        """One log line: counts, the current key against the read's end, rate and estimated time left."""
        text = (
            f"{self.section} ({self.phase}): {self.rows_read:,} read, {self.inserted:,} inserted, "
            f"{self.rejected:,} rejected"
        )
        if self.key is not None and self.through is not None:
            text += f"; key {self.key:,} of {self.through:,}"
            if self.after is not None and self.through > self.after:
                text += f" ({100 * (self.key - self.after) // (self.through - self.after)}%)"
        text += f"; {self.rate:,.0f} rows/s"
        left = self.seconds_left
        return text if left is None else text + f"; about {left:,.0f} s left in this read"


ProgressFn = Callable[[UsageProgress], None]


@dataclass(frozen=True)
class _BatchCounts:
    """What one batch did: rows inserted, already loaded, newly rejected, rejected again unchanged; rejects resolved."""

    inserted: int
    unchanged: int
    rejected: int
    still_rejected: int
    resolved: int


@dataclass(frozen=True)
class RangeCounts:
    """What a run did in one key range (or, for :meth:`UsageResult.counts`, in all so far)."""

    rows_read: int = 0
    inserted: int = 0
    unchanged: int = 0
    rejected: int = 0
    still_rejected: int = 0

    def __sub__(self, other: RangeCounts) -> RangeCounts:
        return RangeCounts(
            self.rows_read - other.rows_read,
            self.inserted - other.inserted,
            self.unchanged - other.unchanged,
            self.rejected - other.rejected,
            self.still_rejected - other.still_rejected,
        )

    def metadata(self) -> dict[str, int]:
        return {
            "rows_read": self.rows_read,
            "inserted": self.inserted,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "still_rejected": self.still_rejected,
        }


@dataclass
class UsageResult:
    """What one usage run did, over all the ranges it loaded.

    ``rows_read`` counts every row read (retries, the lookback and the invalid-key scan included); it equals
    ``inserted + unchanged + rejected + still_rejected``. ``rejected`` counts rows this run rejected anew;
    ``still_rejected`` counts rows of open rejects read again unchanged (same key, same values), so a bad row
    that stays in the source is reported once, not by every run that reads it.
    """

    section: str
    rows_read: int = 0
    inserted: int = 0
    unchanged: int = 0
    rejected: int = 0
    still_rejected: int = 0
    resolved_rejects: int = 0
    batches: int = 0
    cursor_before: int | None = None
    cursor_after: int | None = None
    ranges: list[str] = field(default_factory=list)
    per_range: dict[str, RangeCounts] = field(default_factory=dict)
    seconds: float = 0.0

    def counts(self) -> RangeCounts:
        """The run's counts so far (to tell one range's share by difference)."""
        return RangeCounts(self.rows_read, self.inserted, self.unchanged, self.rejected, self.still_rejected)

    def add(self, counts: _BatchCounts) -> None:
        self.rows_read += counts.inserted + counts.unchanged + counts.rejected + counts.still_rejected
        self.inserted += counts.inserted
        self.unchanged += counts.unchanged
        self.rejected += counts.rejected
        self.still_rejected += counts.still_rejected
        self.resolved_rejects += counts.resolved
        self.batches += 1

    def metadata(self) -> dict[str, float | int | str]:
        return {
            "rows_read": self.rows_read,
            "inserted": self.inserted,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "still_rejected": self.still_rejected,
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
        KeyValidationError: the key column is neither numeric nor text.
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


def loaded_through(store: ModelStore, section: UsageSection) -> int | None:
    """The highest key any range of the section has committed."""
    cursors = store.cursors(section.name)
    return max((int(v) for v in cursors.values()), default=None)


# --- validation SQL ------------------------------------------------------------------------------------
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


def _key_number_sql(kind: ColumnKind) -> str:
    """The staged key (``s.__key``) as HUGEINT when it is a valid key (NULL when it cannot be one)."""
    if kind is ColumnKind.TEXT:
        return "TRY_CAST(trim(CAST(s.__key AS VARCHAR)) AS HUGEINT)"
    if kind is ColumnKind.FLOAT:
        return f"CASE WHEN isfinite(s.__key) AND abs(s.__key) < {FLOAT_KEY_LIMIT} THEN CAST(s.__key AS HUGEINT) END"
    return f"CASE WHEN abs(s.__key) < {KEY_LIMIT} THEN TRY_CAST(s.__key AS HUGEINT) END"


def _key_checks(kind: ColumnKind) -> list[tuple[str, str]]:
    """(condition, reason) for keys that are not valid; every one is a permanent reject."""
    shown = "CAST(s.__key AS VARCHAR)"
    checks = [("s.__key IS NULL", "'null key'")]
    if kind is ColumnKind.TEXT:
        checks.append(
            (
                f"NOT regexp_full_match(trim({shown}), '[0-9]{{1,{KEY_DIGITS}}}')",
                f"'key ''' || {shown} || ''' is not a whole number of 1 to {KEY_DIGITS} digits'",
            )
        )
        return checks
    if kind is ColumnKind.FLOAT:
        checks.append(("NOT isfinite(s.__key)", f"'key ' || {shown} || ' is not a finite number'"))
    checks += [
        ("s.__key < 0", f"'key ' || {shown} || ' is negative'"),
        ("s.__key <> floor(s.__key)", f"'key ' || {shown} || ' is not a whole number'"),
    ]
    if kind is ColumnKind.FLOAT:
        checks.append(
            (
                f"s.__key >= {FLOAT_KEY_LIMIT}",
                f"'key ' || {shown} || ' is a float above 2**53, which cannot hold every whole number (cast the key "
                "column to an integer type)'",
            )
        )
    else:
        checks.append(
            # An exact literal: 10**32 - 1 as a double would already be 1e32.
            (f"abs(s.__key) >= {KEY_LIMIT}", f"'key ' || {shown} || ' is longer than {KEY_DIGITS} digits'")
        )
    return checks


def _finite(expr: str) -> str:
    return f"(TRY_CAST({expr} AS DOUBLE) IS NULL OR NOT isfinite(TRY_CAST({expr} AS DOUBLE)))"


def _row_checks(section: UsageSection) -> list[tuple[str, str, str]]:
    """(condition, reason, offending value) for rows whose key is valid but whose content is not."""
    model = section.model
    match = section.record_match
    # Column names end up inside SQL string literals: double any quote they contain.
    fields = {role: column.replace("'", "''") for role, column in section.fields.items()}

    def text(role: str) -> str:
        return f"CAST(s.{role} AS VARCHAR)"

    checks = [
        ("d.dup_key IS NOT NULL", "'key ' || CAST(__num AS VARCHAR) || ' occurs more than once in the source'", "NULL"),
        ("s.record IS NULL", f"'missing {model.name} reference ({fields['record']})'", "NULL"),
        ("s.date IS NULL", f"'missing date ({fields['date']})'", "NULL"),
        (
            "TRY_CAST(s.date AS TIMESTAMP) IS NULL",
            f"'date ' || {text('date')} || ' is not a timestamp ({fields['date']})'",
            text("date"),
        ),
    ]
    if section.kind == "metrics":
        checks += [
            ("s.dimension IS NULL", f"'missing dimension ({fields['dimension']})'", "NULL"),
            (
                _finite("s.value"),
                f"'value ' || COALESCE({text('value')}, 'NULL') || ' is not a finite number ({fields['value']})'",
                text("value"),
            ),
        ]
    else:
        checks.append(("s.action IS NULL", f"'missing action ({fields['action']})'", "NULL"))
        if "info" in section.fields:
            checks.append(
                (
                    "s.info IS NOT NULL AND NOT json_valid(CAST(s.info AS VARCHAR))",
                    f"'info is not JSON ({fields['info']})'",
                    f"left({text('info')}, 200)",
                )
            )
        for role in ("count", "weight"):
            if role in section.fields:
                checks.append(
                    (
                        f"s.{role} IS NOT NULL AND {_finite('s.' + role)}",
                        f"'{role} ' || {text(role)} || ' is not a finite number ({fields[role]})'",
                        text(role),
                    )
                )
    if section.unknown_reference == "reject":
        checks.append(
            ("r.id IS NULL", f"'unknown {model.slug} ' || {text('record')} || ' (matched by {match})'", text("record"))
        )
    return checks


def _validating_view(section: UsageSection, kind: ColumnKind, names: Sequence[str]) -> str:
    """SQL of the view over ``__usage_batch`` giving each row's key, record, reason, value and permanence."""
    key_checks = _key_checks(kind)
    row_checks = _row_checks(section)
    reason = (
        "CASE "
        + " ".join(f"WHEN {c} THEN {r}" for c, r in key_checks)
        + " "
        + " ".join(f"WHEN {c} THEN {r}" for c, r, _ in row_checks)
        + " END"
    )
    value = (
        "CASE "
        + " ".join(f"WHEN {c} THEN CAST(s.__key AS VARCHAR)" for c, _ in key_checks)
        + " "
        + " ".join(f"WHEN {c} THEN {v}" for c, _, v in row_checks)
        + " END"
    )
    permanent = "CASE " + " ".join(f"WHEN {c} THEN TRUE" for c, _ in key_checks) + " ELSE FALSE END"
    return (
        "CREATE OR REPLACE TEMP VIEW __usage_rows AS "
        f"WITH s0 AS (SELECT {_staging_select(section, names)} FROM __usage_batch b), "
        f"s AS (SELECT s.*, CASE {' '.join(f'WHEN {c} THEN NULL' for c, _ in key_checks)} "
        f"ELSE {_key_number_sql(kind)} END AS __num FROM s0 s) "
        f"SELECT s.*, r.id AS __record_id, r.company_id AS __company_id, {reason} AS __reason, "
        f"{value} AS __value, {permanent} AS __permanent "
        f"FROM s LEFT JOIN __usage_refs r ON r.ref = {_ref_sql(section, 's.record')} "
        "LEFT JOIN __usage_dups d ON d.dup_key = s.__num"
    )


def _ref_sql(section: UsageSection, expr: str) -> str:
    """How a reference is compared: emails lower-cased and trimmed (people type them so), the rest exactly."""
    text = f"CAST({expr} AS VARCHAR)"
    return f"lower(trim({text}))" if section.record_match == "email" else text


def _prepare_refs(section: UsageSection, store: ModelStore) -> None:
    """Index the section's records by the matched field once, not per run pass (``__usage_refs``)."""
    model = section.model
    company = "id" if model.slug == "company" else '"companyId"'
    match = q(section.record_match)
    store.con.execute(
        "CREATE OR REPLACE TEMP TABLE __usage_refs AS "
        f"SELECT {_ref_sql(section, match)} AS ref, min(id) AS id, min({company}) AS company_id "
        f"FROM {q(model.slug)} WHERE {match} IS NOT NULL GROUP BY 1"
    )


def _insert_sql(section: UsageSection) -> str:
    """INSERT of the valid, not yet loaded rows of ``__usage_rows`` (params: section, model, run id, section)."""
    common = "SELECT ?, __num, ?, __record_id, __company_id, CAST(record AS VARCHAR), "
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
    # Anti-join on the store's primary key: keys already loaded (a retry, a re-run, the lookback) are skipped.
    # Accepted keys are unique within a batch (keys that occur twice in the source are rejected), so this is
    # exact; a conflict that still slipped through would fail the batch on the primary key, never duplicate it.
    return (
        f"INSERT INTO {table} {common} {columns}, ? FROM __usage_rows u WHERE __reason IS NULL "
        f'AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.section = ? AND t."key" = u.__num)'
    )


def _key_text_sql() -> str:
    """A checked row's key as reject records hold it: the valid key's digits, else the raw text, or '(null)'."""
    return "COALESCE(CAST(__num AS VARCHAR), CASE WHEN __key IS NULL THEN '(null)' ELSE CAST(__key AS VARCHAR) END)"


def _rejects_sql(section: UsageSection) -> str:
    """The rejected rows of ``__usage_checked`` as reject records, one per source row.

    The fingerprint is a hash of the row's mapped values plus its occurrence among identical rows, so both
    copies of a duplicate key, or several null-key rows, are records of their own.
    """
    values = ", ".join(f"COALESCE(CAST({q(c)} AS VARCHAR), chr(0))" for c in ["__key", *dict.fromkeys(section.fields)])
    fingerprint = f"md5(concat_ws(chr(31), {values}))"
    return (
        f'SELECT "key", fp || \'#\' || CAST(row_number() OVER (PARTITION BY "key", fp) AS VARCHAR) AS fingerprint, '
        'reason, "value", permanent FROM (SELECT '
        f'{_key_text_sql()} AS "key", {fingerprint} AS fp, __reason AS reason, __value AS "value", '
        "__permanent AS permanent FROM __usage_checked WHERE __reason IS NOT NULL)"
    )


# --- loading -------------------------------------------------------------------------------------------
@dataclass
class _Pass:
    """What one run pass needs: the section, store, source and the run it belongs to."""

    section: UsageSection
    store: ModelStore
    warehouse: Warehouse
    info: TableInfo
    run_id: str
    result: UsageResult
    started: float
    progress: ProgressFn | None
    source_max: int | None = None

    @property
    def key_kind(self) -> ColumnKind:
        return self.info.column(self.section.key).kind

    def read(self, key_range: KeyRange) -> Iterable[pa.RecordBatch]:
        columns = [self.section.key, *dict.fromkeys(self.section.fields.values())]
        batches = self.warehouse.read_batches(
            self.section.table, columns, batch_size=self.section.batch_size, key_range=key_range
        )
        return (b for b in batches if b.num_rows)

    def duplicates(self, key_range: KeyRange) -> pa.Table:
        keys = [] if key_range.invalid_keys else self.warehouse.duplicate_keys(self.section.table, key_range)
        return pa.table({"dup_key": pa.array([str(k) for k in keys], pa.string())})

    def load(self, batch: pa.RecordBatch, duplicates: pa.Table) -> _BatchCounts:
        """Validate and insert one batch, in the caller's transaction.

        The common case (every row valid and new) costs one INSERT over the validating view; only a batch with
        rejects or already-loaded rows is materialised to count them and record the rejects.
        """
        section, store = self.section, self.store
        con = store.con
        con.register("__usage_batch", batch)
        con.register("__usage_dups_in", duplicates)
        try:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE __usage_dups AS SELECT CAST(dup_key AS HUGEINT) AS dup_key "
                "FROM __usage_dups_in"
            )
            con.execute(_validating_view(section, self.key_kind, batch.schema.names))
            inserted = int(
                con.execute(
                    _insert_sql(section), [section.name, section.model.slug, self.run_id, section.name]
                ).fetchall()[0][0]
            )
            resolved = known = 0
            if inserted == batch.num_rows:
                accepted, rejected = inserted, 0
                checked = "__usage_rows"
            else:
                checked = "__usage_checked"
                con.execute(f"CREATE OR REPLACE TEMP TABLE {checked} AS SELECT * FROM __usage_rows")
                accepted, rejected = con.execute(
                    "SELECT count(*) FILTER (WHERE __reason IS NULL), count(*) FILTER (WHERE __reason IS NOT NULL) "
                    f"FROM {checked}"
                ).fetchall()[0]
                if rejected:
                    rejects = con.sql(_rejects_sql(section)).to_arrow_table()
                    known = store.known_rejects(section.name, rejects)
                    store.record_rejects(section.name, self.run_id, rejects, resolve_others=False)
            if _has_open_rejects(store, section, self.run_id):
                # Rejects of earlier runs whose rows this batch read again and did not reject again: resolved
                # (the row passes now, or changed and was recorded anew).
                con.execute(
                    f'CREATE OR REPLACE TEMP TABLE __usage_seen AS SELECT DISTINCT {_key_text_sql()} AS "key" '
                    f"FROM {checked}"
                )
                resolved = store.resolve_rejects(section.name, self.run_id, keys="__usage_seen")
                con.execute("DROP TABLE __usage_seen")
            con.execute("DROP VIEW __usage_rows")
            con.execute("DROP TABLE IF EXISTS __usage_checked")
            con.execute("DROP TABLE __usage_dups")
        finally:
            con.unregister("__usage_batch")
            con.unregister("__usage_dups_in")
        return _BatchCounts(inserted, int(accepted) - inserted, int(rejected) - known, known, int(resolved))

    def run(
        self,
        key_range: KeyRange,
        phase: str,
        *,
        cursor_scope: str | None = None,
        duplicates: pa.Table | None = None,
    ) -> None:
        """Load every batch of ``key_range``; each batch commits with its counts (and the range's cursor)."""
        dups = self.duplicates(key_range) if duplicates is None else duplicates
        read_started = time.perf_counter()
        for batch in self.read(key_range):
            with self.store.transaction():
                self.result.add(self.load(batch, dups))
                top = None if key_range.invalid_keys else _max_key(batch)
                if cursor_scope is not None and top is not None:
                    old = self.store.get_cursor(self.section.name, cursor_scope)
                    if old is None or top > int(old):
                        self.store.set_cursor(self.section.name, cursor_scope, str(top))
                r = self.result
                self.store.record_progress(
                    self.run_id,
                    rows_read=r.rows_read,
                    inserted=r.inserted,
                    unchanged=r.unchanged,
                    rejected=r.rejected,
                    resolved_rejects=r.resolved_rejects,
                    cursor_after=_str(loaded_through(self.store, self.section)),
                )
            if self.progress is not None:
                self.progress(
                    UsageProgress(
                        self.section.name,
                        phase,
                        r.rows_read,
                        r.inserted,
                        r.rejected,
                        top,
                        key_range.after,
                        _read_end(key_range.through, self.source_max),
                        time.perf_counter() - self.started,
                        time.perf_counter() - read_started,
                    )
                )


def _read_end(through: int | None, source_max: int | None) -> int | None:
    """Where a read will stop: its bound, or the source's highest key when that is lower (a mostly empty range)."""
    if through is None or source_max is None:
        return through if source_max is None else source_max
    return min(through, source_max)


def _max_key(batch: pa.RecordBatch) -> int | None:
    """The highest valid key of a batch read from a key range (text keys are cast; every key there is valid)."""
    column = batch.column(0)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = pc.cast(pc.utf8_trim_whitespace(column), pa.decimal128(38, 0))
    top = pc.max(column).as_py()
    return None if top is None else int(top)


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
    progress: ProgressFn | None = None,
) -> UsageResult:
    """Load one key range in batches, resuming after its cursor; each batch commits with the range's cursor.

    Args:
        reread: Read the whole range again instead of resuming after its cursor (idempotent).
    """
    info = check_source(section, warehouse)
    _prepare_refs(section, store)
    one = _Pass(
        section, store, warehouse, info, run_id, result or UsageResult(section.name), time.perf_counter(), progress
    )
    _load_span(one, span, reread=reread)
    return one.result


def _load_span(one: _Pass, span: KeyRangeSpan, *, reread: bool) -> None:
    scope = span.partition_key
    cursor = one.store.get_cursor(one.section.name, scope)
    after = span.start - 1
    if cursor is not None and not reread:
        after = max(after, int(cursor))
    before = one.result.counts()
    one.run(KeyRange(one.section.key, after=after, through=span.end), "range", cursor_scope=scope)
    one.result.ranges.append(scope)
    one.result.per_range[scope] = one.result.counts() - before


def _lookback(one: _Pass) -> None:
    """Re-read the ``lookback`` keys below the section's loaded-through cursor, whatever ranges they fall in.

    Rows already loaded are skipped by the anti-join; a late row is inserted. Cursors do not move: every key
    read is at or below the loaded-through cursor already.
    """
    loaded = loaded_through(one.store, one.section)
    if not one.section.lookback or loaded is None:
        return
    window = KeyRange(one.section.key, after=max(loaded - one.section.lookback, -1), through=loaded)
    one.run(window, "lookback")


def _invalid_keys(one: _Pass) -> None:
    """Rows whose key is not valid belong to no range: each run reads them (one filtered scan) and rejects them.

    They are permanent rejects. One whose row left the source or changed (it is then recorded anew) is resolved.
    """
    one.run(KeyRange(one.section.key, invalid_keys=True), "invalid keys")
    one.result.resolved_rejects += one.store.resolve_rejects(one.section.name, one.run_id, permanent=True)


def _retry_rejects(one: _Pass) -> None:
    """Read again exactly the keys of open, retryable rejects (e.g. an end user that did not exist yet).

    Rows already loaded are skipped, so this is idempotent; a reject whose row now passes is marked resolved,
    one still failing is recorded again by this run. Keys are read :data:`RETRY_KEYS_PER_READ` at a time.
    """
    rows = one.store.con.execute(
        'SELECT DISTINCT CAST("key" AS HUGEINT) AS k FROM rejected_rows WHERE section = ? AND resolved_at IS NULL '
        'AND NOT permanent AND TRY_CAST("key" AS HUGEINT) IS NOT NULL ORDER BY k',
        [one.section.name],
    ).fetchall()
    keys = [int(k) for (k,) in rows]
    for start in range(0, len(keys), RETRY_KEYS_PER_READ):
        chunk = tuple(keys[start : start + RETRY_KEYS_PER_READ])
        one.run(KeyRange(one.section.key, keys=chunk), "retry")


def run_usage(
    section: UsageSection,
    store: ModelStore,
    warehouse: Warehouse,
    spans: Iterable[KeyRangeSpan],
    *,
    dagster_run_id: str | None = None,
    reread: bool = False,
    progress: ProgressFn | None = None,
) -> UsageResult:
    """Load ``spans`` in key order, logging the run in the store's sync log.

    In order: retry open rejects, re-read the lookback window, load each range, reject invalid keys.

    Args:
        progress: Called after every committed batch (a log line, a progress bar).
    """
    started = time.perf_counter()
    result = UsageResult(section.name, cursor_before=loaded_through(store, section))
    run_id = store.start_run(
        section.name,
        "usage",
        dagster_run_id=dagster_run_id,
        cursor_before=_str(result.cursor_before),
    )
    try:
        info = check_source(section, warehouse)
        _prepare_refs(section, store)
        bounds = warehouse.key_bounds(section.table, section.key) if progress is not None else None
        one = _Pass(section, store, warehouse, info, run_id, result, started, progress, bounds and bounds[1])
        _retry_rejects(one)
        _lookback(one)
        for span in sorted(spans):
            _load_span(one, span, reread=reread)
        _invalid_keys(one)
    except Exception as exc:
        result.seconds = time.perf_counter() - started
        store.finish_run(
            run_id,
            "failed",
            rows_read=result.rows_read,
            inserted=result.inserted,
            unchanged=result.unchanged,
            rejected=result.rejected,
            resolved_rejects=result.resolved_rejects,
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
        notes=f"{len(result.ranges)} range(s), {result.batches} batch(es), {result.still_rejected} row(s) still "
        "rejected as before",
    )
    return result


def _str(value: int | None) -> str | None:
    return None if value is None else str(value)
