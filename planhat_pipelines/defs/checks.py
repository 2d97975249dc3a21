"""Asset checks on every sync asset, built from the config (non-blocking: a failed check never stops a sync).

CRM sections (``crm/<section>``):

- ``unique_keys``: the section's Planhat key is unique among the non-null values of the model's store table.
- Freshness is the asset's ``FreshnessPolicy`` (:mod:`planhat_pipelines.defs.specs`), not a check.
- ``source_schema_unchanged`` (also on usage sections): the table's columns now against the ones recorded by
  the section's last successful run (schema drift, :mod:`planhat_pipelines.sync.drift`): a mapped column removed
  or retyped fails as ERROR (the next run will fail on it), an added or unmapped change as WARN.

Usage sections (``usage/<section>``):

- ``unique_keys``: no ``(section, key)`` is stored twice (the primary key guarantees it; counted anyway, so a
  schema change that drops the key shows up) and no stored key lies above the section's loaded-through cursor
  (rows and cursors commit in one transaction, so such a row means the store was written outside the sync).
- ``row_count_matches_source``: over the closed ranges (ranges with a cursor whose end is at or below the
  loaded-through cursor, so no more rows are expected there), the distinct source keys equal the stored keys
  plus the keys of open rejects. The source is counted by one aggregate in the warehouse
  (``Warehouse.key_counts``: rows and distinct keys, two numbers whatever the table's size); only a failed check
  streams the key column, to name the lowest missing key.
- ``fresh``: the last successful run ended within 2 x the cadence interval, or, failing that, the source has
  no key above the loaded-through cursor (the cadence sensor skips runs when nothing is new). A domain rule no
  ``FreshnessPolicy`` can express, so it stays a check, run hourly by its automation condition.

Every check attaches the store read-only (the last committed snapshot), so checks need no pool and never
wait for a sync.

No `from __future__ import annotations` here: Dagster reads the check context's annotation at runtime.
"""

import json
from collections.abc import Callable
from typing import Any

import dagster as dg

from planhat_pipelines.config import Config, CrmSection, UsageSection
from planhat_pipelines.defs.naming import crm_asset_key, reread_run_config, usage_asset_key
from planhat_pipelines.defs.resources import StoreResource, WarehousesResource
from planhat_pipelines.errors import PlanhatPipelinesError, SchemaDriftError
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.schema import USAGE_TABLES
from planhat_pipelines.sync.drift import check_drift, compare, mapped_columns
from planhat_pipelines.sync.ranges import KeyRangeSpan, range_of
from planhat_pipelines.warehouses.base import KeyRange, Warehouse

#: When the usage ``fresh`` check runs by itself (its automation condition): hourly, at half past.
FRESH_CHECK_CRON = "30 * * * *"
#: Rows per batch when counting a source's keys.
COUNT_BATCH_SIZE = 500_000
_SAMPLE = 5

CheckFn = Callable[..., dg.AssetCheckResult]


def _fresh_result(section: str, ended_at: Any, age: float | None, limit: float, what: str) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = {"limit_minutes": round(limit / 60, 1)}
    if age is None:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"section '{section}' has never synced successfully. Fix: materialize it, or check its "
            "schedule/sensor and the connection's credentials sensor",
            metadata=metadata,
        )
    metadata |= {"last_success_at": str(ended_at), "age_minutes": round(age / 60, 1)}
    passed = age <= limit
    text = f"last successful sync of '{section}' ended {age / 60:.0f} min ago ({what}: {limit / 60:.0f} min)"
    if not passed:
        text += ". Fix: check that its schedule/sensor is running and look at the failed runs and credentials sensor"
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN, description=text, metadata=metadata)


# --- CRM -------------------------------------------------------------------------------------------------
def _crm_checks(section: CrmSection) -> list[dg.AssetChecksDefinition]:
    asset = crm_asset_key(section)

    @dg.asset_check(
        asset=asset,
        name="unique_keys",
        description=f"{section.model.name}.{section.planhat_key} (the section's Planhat key) is unique among "
        "non-null values in the store.",
        blocking=False,
    )
    def _unique(store: StoreResource) -> dg.AssetCheckResult:
        with store.open(read_only=True) as db:
            rows = db.duplicate_planhat_keys(section.model.slug, section.planhat_key)
        sample = ", ".join(f"{k} (x{n})" for k, n in rows[:_SAMPLE])
        return dg.AssetCheckResult(
            passed=not rows,
            metadata={"duplicate_keys": len(rows), "sample": sample},
            description=(
                f"{len(rows)} {section.planhat_key} values occur more than once in {section.model.slug}: {sample}. "
                f"Fix: make {section.planhat_key} unique in Planhat/the store, then run the section again"
                if rows
                else None
            ),
        )

    return [_unique, _schema_check(section, asset)]


# --- both ------------------------------------------------------------------------------------------------
def _schema_check(section: CrmSection | UsageSection, asset: dg.AssetKey) -> dg.AssetChecksDefinition:
    """``source_schema_unchanged``: the source's columns now against those of the last successful run."""

    @dg.asset_check(
        asset=asset,
        name="source_schema_unchanged",
        description=f"The columns of {section.table} are those the section's last successful run saw: a mapped "
        "column removed or retyped is an ERROR (the next run fails on it), an added or unmapped change a WARN.",
        blocking=False,
    )
    def _schema(store: StoreResource, warehouses: WarehousesResource) -> dg.AssetCheckResult:
        with store.open(read_only=True) as db:
            previous = db.last_source_columns(section.name)
        try:
            with warehouses.open(section.connection) as warehouse:
                info = warehouse.describe(section.table)
        except PlanhatPipelinesError as exc:  # a missing table, refused credentials: a failed check, not a crash
            return dg.AssetCheckResult(passed=False, description=str(exc), metadata={"error": exc.problem})
        schema = dg.TableSchema(columns=[dg.TableColumn(c.name, c.type) for c in info.columns])
        metadata: dict[str, Any] = {"columns": dg.MetadataValue.table_schema(schema)}
        drift = compare(previous, info.columns, mapped_columns(section))
        if drift.first:
            return dg.AssetCheckResult(
                passed=True, metadata=metadata, description="no successful run yet: its columns become the baseline"
            )
        metadata |= {
            "added": ", ".join(c.name for c in drift.added),
            "removed": ", ".join(c.name for c in drift.removed),
            "retyped": ", ".join(f"{r.new.name} {r.old.type} → {r.new.type}" for r in drift.retyped),
        }
        if not drift.changed:
            return dg.AssetCheckResult(passed=True, metadata=metadata, description="same columns as the last run")
        try:
            check_drift(section.name, section.table, drift)
        except SchemaDriftError as exc:
            return dg.AssetCheckResult(
                passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata, description=str(exc)
            )
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=metadata,
            description="; ".join(drift.notes()) + ". The next run goes ahead and records them: map an added "
            f"column in section '{section.name}' to sync it",
        )

    return _schema


# --- usage -----------------------------------------------------------------------------------------------
def _loaded_state(store: ModelStore, section: UsageSection) -> tuple[int | None, list[KeyRangeSpan]]:
    """The loaded-through cursor and the ranges that have a cursor."""
    spans: list[KeyRangeSpan] = []
    for scope in store.cursors(section.name):
        try:
            spans.append(KeyRangeSpan.parse(scope))
        except ValueError:
            continue
    return store.loaded_through(section.name), sorted(spans)


def count_source_keys(warehouse: Warehouse, section: UsageSection, through: int) -> tuple[int, int]:
    """(rows, distinct keys) of the source with a valid key at or below ``through``: one warehouse aggregate."""
    return warehouse.key_counts(section.table, KeyRange(section.key, after=None, through=through))


def lowest_missing_key(
    store: ModelStore, warehouse: Warehouse, section: UsageSection, through: int
) -> tuple[int | None, int]:
    """(lowest, count) of the source's valid keys up to ``through`` that are neither stored nor open rejects.

    Streams only the key column, one batch at a time, anti-joined in the store (memory bounded by the batch).
    """
    target = USAGE_TABLES[section.kind]
    lowest: int | None = None
    missing = 0
    key_range = KeyRange(section.key, after=None, through=through)
    for batch in warehouse.read_batches(section.table, [section.key], batch_size=COUNT_BATCH_SIZE, key_range=key_range):
        low, n = store.missing_usage_keys(section.name, target, batch.column(0))
        missing += n
        if low is not None:
            lowest = low if lowest is None else min(lowest, low)
    return lowest, missing


def _missing_keys_fix(section: UsageSection, lowest: int | None, missing: int, loaded: int | None) -> str:
    """What fixes keys missing below the cursor: a lookback that covers them, and one re-read of their range."""
    if lowest is None or loaded is None:
        return f"Fix: re-read the closed ranges of '{section.name}' (materialize their partitions with `reread: true`)"
    window = loaded - lowest + 1
    partition = range_of(lowest, section.partition_span).partition_key
    config = json.dumps(reread_run_config(section))
    return (
        f"{missing} source key(s) are neither stored nor rejected, the lowest {lowest}, {window - 1} keys below the "
        f"loaded-through cursor {loaded}: rows committed late with lower keys. Fix: set `lookback: {window}` (or "
        f"more) on usage section '{section.name}' - every tick then re-reads that many keys below the cursor, "
        "whatever range they are in - and load the missed rows now with one re-read of their range: "
        f"`dagster asset materialize -m planhat_pipelines.definitions --select usage/{section.name} "
        f"--partition {partition} --config-json '{config}'`"
    )


def _usage_unique_check(section: UsageSection) -> dg.AssetChecksDefinition:
    """``unique_keys`` on ``usage/<section>``: no key stored twice, none above the loaded-through cursor."""
    target = USAGE_TABLES[section.kind]

    @dg.asset_check(
        asset=usage_asset_key(section),
        name="unique_keys",
        description="No (section, key) is stored twice, and no stored key lies above the loaded-through cursor.",
        blocking=False,
    )
    def _unique(store: StoreResource) -> dg.AssetCheckResult:
        with store.open(read_only=True) as db:
            loaded, _ = _loaded_state(db, section)
            dupes = db.duplicate_usage_keys(section.name, target)
            # Without any cursor, every stored row is unaccounted for.
            above = db.usage_rows_above(section.name, target, loaded)
        problems = []
        if dupes:
            problems.append(f"{dupes} keys are stored more than once")
        if above[0]:
            problems.append(
                f"{above[0]} stored rows lie above the loaded-through cursor {loaded} (from key {above[1]})"
            )
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={
                "duplicate_keys": int(dupes),
                "rows_above_cursor": int(above[0]),
                "loaded_through": "" if loaded is None else str(loaded),
            },
            description=(
                "; ".join(problems) + f". Fix: the store was written outside the sync; re-read the section's ranges "
                f"(`reread: true`) after removing the extra rows of section '{section.name}' from {target}"
                if problems
                else None
            ),
        )

    return _unique


def _row_count_check(section: UsageSection) -> dg.AssetChecksDefinition:
    """``row_count_matches_source`` on ``usage/<section>``: over closed ranges, source keys = stored + rejected."""
    target = USAGE_TABLES[section.kind]

    @dg.asset_check(
        asset=usage_asset_key(section),
        name="row_count_matches_source",
        description="Over closed key ranges, distinct source keys = stored keys + keys of open rejects.",
        blocking=False,
    )
    def _row_count(store: StoreResource, warehouses: WarehousesResource) -> dg.AssetCheckResult:
        with store.open(read_only=True) as db:
            loaded, spans = _loaded_state(db, section)
            closed = [s for s in spans if loaded is not None and s.end <= loaded]
            if not closed:
                return dg.AssetCheckResult(
                    passed=True,
                    metadata={"closed_ranges": 0, "loaded_through": "" if loaded is None else str(loaded)},
                    description="no closed range yet: every loaded key is in the range still being filled",
                )
            through = max(s.end for s in closed)
            stored, rejected, accounted = db.usage_key_stats(section.name, target, through)
            with warehouses.open(section.connection) as warehouse:
                source_rows, source_keys = count_source_keys(warehouse, section, through)
                passed = int(accounted) == source_keys
                lowest, missing = (None, 0) if passed else lowest_missing_key(db, warehouse, section, through)
        metadata: dict[str, Any] = {
            "closed_ranges": len(closed),
            "checked_through_key": str(through),
            "source_rows": source_rows,
            "source_distinct_keys": source_keys,
            "stored_rows": int(stored),
            "open_rejects_not_stored": int(rejected),
            "difference": source_keys - int(accounted),
        }
        description = (
            f"keys up to {through}: source has {source_keys} distinct keys, the store {stored} rows + "
            f"{rejected} open rejects"
        )
        if not passed:
            metadata["lowest_missing_key"] = "" if lowest is None else str(lowest)
            description += ". " + _missing_keys_fix(section, lowest, missing, loaded)
        return dg.AssetCheckResult(passed=passed, metadata=metadata, description=description)

    return _row_count


def _usage_fresh_check(section: UsageSection) -> dg.AssetChecksDefinition:
    """``fresh`` on ``usage/<section>``: a recent successful run, or nothing new in the source."""
    limit = 2 * section.cadence.interval_seconds

    @dg.asset_check(
        asset=usage_asset_key(section),
        name="fresh",
        description=f"The last successful run ended within 2 x the cadence ({section.cadence.describe()}), "
        "or the source has nothing new. Runs by itself hourly (automation condition).",
        blocking=False,
        # A domain check a FreshnessPolicy cannot express ("nothing new" is fresh), evaluated on a cron tick by
        # the automation sensor rather than by a job and a schedule.
        automation_condition=dg.AutomationCondition.cron_tick_passed(FRESH_CHECK_CRON),  # type: ignore[arg-type]
    )
    def _fresh(store: StoreResource, warehouses: WarehousesResource) -> dg.AssetCheckResult:
        with store.open(read_only=True) as db:
            ended_at, age = db.last_success(section.name)
            loaded, _ = _loaded_state(db, section)
        result = _fresh_result(section.name, ended_at, age, limit, f"{section.cadence.describe()}, limit")
        if result.passed:
            return result
        # No recent run is fine when there was nothing to load: the sensor requests runs only for new keys.
        with warehouses.open(section.connection) as warehouse:
            max_key = warehouse.max_key(section.table, section.key)
        if max_key is None or (loaded is not None and max_key <= loaded):
            return dg.AssetCheckResult(
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={**result.metadata, "source_max_key": "" if max_key is None else str(max_key)},
                description=f"no recent run, but the source has nothing above the loaded-through cursor {loaded}",
            )
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={**result.metadata, "source_max_key": str(max_key), "loaded_through": str(loaded)},
            description=f"{result.description} (source max key {max_key}, loaded through {loaded})",
        )

    return _fresh


def _usage_checks(section: UsageSection) -> list[dg.AssetChecksDefinition]:
    return [
        _usage_unique_check(section),
        _row_count_check(section),
        _usage_fresh_check(section),
        _schema_check(section, usage_asset_key(section)),
    ]


def build_sync_checks(config: Config) -> list[dg.AssetChecksDefinition]:
    """``unique_keys`` and ``source_schema_unchanged`` on every ``crm/<section>``; ``unique_keys``,
    ``row_count_matches_source``, ``fresh`` and ``source_schema_unchanged`` on every ``usage/<section>``."""
    checks: list[dg.AssetChecksDefinition] = []
    for crm in config.crm:
        checks += _crm_checks(crm)
    for usage in config.usage:
        checks += _usage_checks(usage)
    return checks
