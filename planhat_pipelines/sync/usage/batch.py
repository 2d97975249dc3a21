"""One pass of a usage run over one key range: read in batches, validate, insert and commit each batch.

A batch commits in one store transaction with its rows, its rejects, the range's cursor and the run's
counts so far, so a crash leaves either all of a batch or nothing of it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from planhat_pipelines.config import UsageSection
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.schema import USAGE_TABLES
from planhat_pipelines.store.usage_daily import aggregate_sql
from planhat_pipelines.sync.usage.result import BatchCounts, ProgressFn, UsageProgress, UsageResult
from planhat_pipelines.sync.usage.validation import (
    NEW_ROWS,
    insert_new_rows_sql,
    key_text_sql,
    new_rows_sql,
    rejects_sql,
    validating_view,
    with_references,
)
from planhat_pipelines.warehouses.base import ColumnKind, KeyRange, TableInfo, Warehouse


@dataclass
class Pass:
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
    #: What the pass knows of the section's state, read once and kept up to date by its own commits (one section
    #: never runs twice at once: its own pool), so a batch costs no catalog reads of its cursors or rejects.
    _cursors: dict[str, int | None] = field(default_factory=dict, init=False, repr=False)
    _loaded: int | None = field(default=None, init=False, repr=False)
    _loaded_known: bool = field(default=False, init=False, repr=False)
    _open_rejects: bool | None = field(default=None, init=False, repr=False)

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

    def cursor(self, scope: str) -> int | None:
        """The committed cursor of range ``scope`` (read from the store once per pass)."""
        if scope not in self._cursors:
            value = self.store.get_cursor(self.section.name, scope)
            self._cursors[scope] = None if value is None else int(value)
        return self._cursors[scope]

    def open_rejects(self) -> bool:
        """Whether the section had open rejects of earlier runs when the pass began (read once per pass: only
        this run records or resolves the section's rejects while it runs)."""
        if self._open_rejects is None:
            self._open_rejects = self.store.has_open_rejects(self.section.name, self.run_id)
        return self._open_rejects

    def loaded_through(self) -> int | None:
        """The section's highest committed key (read from the store once per pass)."""
        if not self._loaded_known:
            self._loaded, self._loaded_known = loaded_through(self.store, self.section), True
        return self._loaded

    def load(
        self,
        batch: pa.RecordBatch,
        duplicates: pa.Table,
        bounds: tuple[int, int] | None = None,
        *,
        skip_loaded: bool = True,
    ) -> BatchCounts:
        """Validate and insert one batch, in the caller's transaction.

        ``bounds`` are the batch's lowest and highest key when every key read is valid (a key-range read);
        otherwise the validating view computes them. ``skip_loaded=False`` inserts without the anti-join against
        the stored keys: only for a batch known to hold no stored key.

        The common case (every row valid and new) costs one pass over the validating view (the new rows, then
        their insert and daily aggregates); only a batch with rejects or already-loaded rows is materialised
        again to count them and record the rejects.
        """
        con = self.store.con
        con.register("__usage_batch", with_references(self.section, con, batch))
        con.register("__usage_dups_in", duplicates)
        try:
            self._stage(batch, duplicates.num_rows > 0)
            inserted = self._insert(bounds, skip_loaded=skip_loaded)
            if inserted == batch.num_rows:
                accepted, rejected, known = inserted, 0, 0
                checked = "__usage_rows"
            else:
                checked = "__usage_checked"
                accepted, rejected, known = self._record_rejects(checked)
            resolved = self._resolve_seen(checked)
            con.execute("DROP VIEW __usage_rows")
            con.execute("DROP TABLE IF EXISTS __usage_checked")
            con.execute("DROP TABLE IF EXISTS __usage_dups")
        finally:
            con.unregister("__usage_batch")
            con.unregister("__usage_dups_in")
        return BatchCounts(inserted, accepted - inserted, rejected - known, known, resolved)

    def _stage(self, batch: pa.RecordBatch, duplicates: bool) -> None:
        """The source's duplicate keys as a table (when it has any), and the validating view ``__usage_rows``."""
        con = self.store.con
        if duplicates:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE __usage_dups AS SELECT CAST(dup_key AS HUGEINT) AS dup_key "
                "FROM __usage_dups_in"
            )
        con.execute(validating_view(self.section, self.key_kind, batch.schema.names, duplicates=duplicates))

    def _insert(self, bounds: tuple[int, int] | None, *, skip_loaded: bool) -> int:
        """Insert the batch's valid rows that are not loaded yet; returns how many were inserted.

        The anti-join reads the stored keys between the batch's lowest and highest key: from ``bounds`` when
        given (no second pass over the batch), else from the validating view. The inserted rows' daily
        aggregates go to ``usage_daily`` with them (see ``store/usage_daily.py``).
        """
        section, con = self.section, self.store.con
        if bounds is None:
            low, high = con.execute(
                "SELECT min(__num), max(__num) FROM __usage_rows WHERE __reason IS NULL"
            ).fetchall()[0]
        else:
            low, high = bounds
        if low is None:
            return 0
        params = [section.name, section.model.slug, self.run_id]
        if skip_loaded:
            params += [section.name, str(low), str(high)]
        # The new rows are materialised once so the daily series aggregates exactly the rows inserted, in this
        # batch's transaction: a rolled-back or retried commit leaves neither, a re-read key adds to neither.
        con.execute(new_rows_sql(section, skip_loaded=skip_loaded), params)
        inserted = int(con.execute(insert_new_rows_sql(section)).fetchall()[0][0])
        if inserted:
            con.execute(aggregate_sql(section.kind, NEW_ROWS))
        con.execute(f"DROP TABLE {NEW_ROWS}")
        return inserted

    def _record_rejects(self, checked: str) -> tuple[int, int, int]:
        """Materialise the checked rows as ``checked`` and record its rejects.

        Returns:
            The rows accepted (inserted or already loaded), the rows rejected, and how many of those rejects
            were already recorded, unchanged, by an earlier run.
        """
        section, store = self.section, self.store
        con = store.con
        con.execute(f"CREATE OR REPLACE TEMP TABLE {checked} AS SELECT * FROM __usage_rows")
        accepted, rejected = con.execute(
            "SELECT count(*) FILTER (WHERE __reason IS NULL), count(*) FILTER (WHERE __reason IS NOT NULL) "
            f"FROM {checked}"
        ).fetchall()[0]
        known = 0
        if rejected:
            rejects = con.sql(rejects_sql(section)).to_arrow_table()
            known = store.known_rejects(section.name, rejects)
            store.record_rejects(section.name, self.run_id, rejects, resolve_others=False)
        return int(accepted), int(rejected), known

    def _resolve_seen(self, checked: str) -> int:
        """Resolve earlier runs' rejects whose rows this batch read again and did not reject again.

        Such a row passes now, or changed and was recorded anew. Returns how many rejects were resolved.
        """
        section, store = self.section, self.store
        if not self.open_rejects():
            return 0
        store.con.execute(
            f'CREATE OR REPLACE TEMP TABLE __usage_seen AS SELECT DISTINCT {key_text_sql()} AS "key" FROM {checked}'
        )
        resolved = store.resolve_rejects(section.name, self.run_id, keys="__usage_seen")
        store.con.execute("DROP TABLE __usage_seen")
        return int(resolved)

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
        fresh_above = self._fresh_above(key_range, cursor_scope)
        read_started = time.perf_counter()
        for batch in self.read(key_range):
            bounds = None if key_range.invalid_keys else _key_bounds(batch)
            top = None if bounds is None else bounds[1]
            # A range's batches come in key order, each above the last: one whose lowest key is above every key
            # the range held when the pass began holds no stored key, so it needs no anti-join (the first attempt;
            # a retried commit might have landed after all).
            fresh = fresh_above is not None and bounds is not None and bounds[0] > fresh_above
            attempts = 0

            def commit(
                batch: pa.RecordBatch = batch, bounds: tuple[int, int] | None = bounds, fresh: bool = fresh
            ) -> BatchCounts:
                # Runs again from the start if the commit loses a race with another section's: nothing
                # outside the store changes until it has committed (the pass's own state moves after it).
                nonlocal attempts
                attempts += 1
                self.store.label_commit(self.section.name, self.run_id)
                counts = self.load(batch, dups, bounds, skip_loaded=not (fresh and attempts == 1))
                if cursor_scope is not None and bounds is not None:
                    self._advance_cursor(cursor_scope, bounds[1])
                self._record_progress(counts, None if bounds is None or cursor_scope is None else bounds[1])
                return counts

            self.result.add(self.store.atomic(commit))
            self._committed(cursor_scope, top)
            if self.progress is not None:
                self.progress(self._progress(phase, key_range, top, read_started))

    def _fresh_above(self, key_range: KeyRange, cursor_scope: str | None) -> int | None:
        """For a range pass (``cursor_scope`` set), the key above which the store held none of the range's keys when
        the pass began: batches wholly above it skip the anti-join. None (every batch uses it) for other passes."""
        if cursor_scope is None or key_range.after is None or key_range.keys is not None or key_range.invalid_keys:
            return None
        table = USAGE_TABLES[self.section.kind]
        top = self.store.highest_usage_key(self.section.name, table, key_range.after, key_range.through)
        return key_range.after if top is None else top

    def _advance_cursor(self, scope: str, top: int) -> None:
        """Move the range's cursor up to ``top`` (never down: a retry or lookback may read lower keys)."""
        old = self.cursor(scope)
        if old is None or top > old:
            self.store.set_cursor(self.section.name, scope, str(top))

    def _committed(self, scope: str | None, top: int | None) -> None:
        """After a batch committed: the pass's copy of the range's cursor and of the loaded-through key move."""
        if top is None:
            return
        if scope is not None:
            old = self.cursor(scope)
            self._cursors[scope] = top if old is None else max(old, top)
        loaded = self.loaded_through()
        if scope is not None and (loaded is None or top > loaded):
            self._loaded = top

    def _record_progress(self, batch: BatchCounts, top: int | None) -> None:
        """The run's counts so far, this batch's included, into the sync log, in the batch's transaction.

        ``top`` is the range cursor this batch moves to (None when it moves none).
        """
        r = copy.copy(self.result)
        r.add(batch)
        loaded = self.loaded_through()
        if top is not None and (loaded is None or top > loaded):
            loaded = top
        self.store.record_progress(
            self.run_id,
            rows_read=r.rows_read,
            inserted=r.inserted,
            unchanged=r.unchanged,
            rejected=r.rejected,
            resolved_rejects=r.resolved_rejects,
            cursor_after=cursor_text(loaded),
        )

    def _progress(self, phase: str, key_range: KeyRange, top: int | None, read_started: float) -> UsageProgress:
        r = self.result
        return UsageProgress(
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


def loaded_through(store: ModelStore, section: UsageSection) -> int | None:
    """The highest key any range of the section has committed (the store computes it)."""
    return store.loaded_through(section.name)


def cursor_text(value: int | None) -> str | None:
    """A cursor as the sync log holds it (text; None stays None)."""
    return None if value is None else str(value)


def _read_end(through: int | None, source_max: int | None) -> int | None:
    """Where a read will stop: its bound, or the source's highest key when that is lower (a mostly empty range)."""
    if through is None or source_max is None:
        return through if source_max is None else source_max
    return min(through, source_max)


def _key_bounds(batch: pa.RecordBatch) -> tuple[int, int] | None:
    """The lowest and highest key of a batch read from a key range (text keys are cast; every key there is valid)."""
    column = batch.column(0)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = pc.cast(pc.utf8_trim_whitespace(column), pa.decimal128(38, 0))
    low, high = pc.min_max(column).values()
    if high.as_py() is None:
        return None
    return int(low.as_py()), int(high.as_py())
