"""Usage sync in Dagster: one range-partitioned asset and one cadence sensor per usage section.

No `from __future__ import annotations` here: Dagster reads the run-config annotation at runtime.
"""

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from planhat_pipelines.config import Config, ConnectionConfig, UsageSection
from planhat_pipelines.defs.cadence import last_due
from planhat_pipelines.defs.failures import SYNC_RETRY_POLICY, sync_failures
from planhat_pipelines.defs.naming import section_pool, usage_asset_key
from planhat_pipelines.defs.preview import preview_observation
from planhat_pipelines.defs.resources import StoreResource, WarehousesResource
from planhat_pipelines.defs.specs import multi_asset_args, usage_asset_spec, usage_partitions
from planhat_pipelines.errors import SyncError
from planhat_pipelines.health import skip_reason_if_unhealthy
from planhat_pipelines.preview import usage_preview
from planhat_pipelines.store.schema import USAGE_TABLES
from planhat_pipelines.sync.drift import added_columns
from planhat_pipelines.sync.ranges import KeyRangeSpan, range_of, span_at
from planhat_pipelines.sync.usage import UsageProgress, UsageResult, check_source, run_usage
from planhat_pipelines.warehouses.base import Warehouse

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


class UsageRunConfig(dg.Config):
    """Run config of a usage asset."""

    reread: bool = False
    """Read each range from its start again instead of resuming after its cursor (idempotent)."""
    dry_run: bool = False
    """Preview: load the ranges as a run would and roll every write back; the counts are reported as an asset
    observation, and the assets after it in the run are skipped."""


def build_usage_asset(section: UsageSection, config: Config) -> dg.AssetsDefinition:
    """The asset ``usage/<section>``: one run loads every key range it is given (single-run backfill policy)."""
    spec = usage_asset_spec(section, config)
    connection_type = config.connection(section.connection).type

    @dg.multi_asset(
        specs=[spec],
        **multi_asset_args(spec),
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=section_pool(section),
        retry_policy=SYNC_RETRY_POLICY,
    )
    def _usage_asset(
        context: dg.AssetExecutionContext, config: UsageRunConfig, store: StoreResource, warehouses: WarehousesResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
        spans, invalid = parse_partition_keys(context.partition_keys)
        for key in invalid:
            context.log.warning(
                f"partition '{key}' is not a usage range and is not loaded. Fix: delete it "
                f"(`planhat-pipelines ranges {section.name} --delete-invalid`)"
            )
        if not spans:
            raise dg.Failure(
                description=f"usage section '{section.name}': none of the run's partitions is a key range "
                f"({', '.join(invalid)})",
                metadata={"fix": f"run registered ranges (`planhat-pipelines ranges {section.name}`)"},
                allow_retries=False,
            )

        def progress(p: UsageProgress) -> None:
            context.log.info(p.describe())

        with (
            sync_failures(f"usage/{section.name}"),
            store.open() as model_store,
            warehouses.open(section.connection) as warehouse,
        ):
            result = run_usage(
                section,
                model_store,
                warehouse,
                spans,
                dagster_run_id=context.run_id,
                reread=config.reread,
                progress=progress,
                dry_run=config.dry_run,
            )
            stored_rows = model_store.usage_rows(section.name, USAGE_TABLES[section.kind])
        context.log.info(
            f"{section.name}: {result.rows_read} read, {result.inserted} inserted, {result.unchanged} already "
            f"loaded, {result.rejected} rejected over {len(spans)} range(s)"
        )
        for line in result.log:
            context.log.info(f"{section.name}: {line}")
        if config.dry_run:
            yield preview_observation(spec.key, usage_preview(result), context.partition_keys)
            return
        metadata = materialization_metadata(context, result, section, connection_type, stored_rows)
        yield dg.MaterializeResult(metadata=metadata)

    return _usage_asset


def materialization_metadata(
    context: dg.AssetExecutionContext,
    result: UsageResult,
    section: UsageSection,
    warehouse_type: str,
    stored_rows: int,
) -> dict[str, Any]:
    """Each range partition gets its own counts; every partition also gets the run's totals as ``run_*``.

    A single-run backfill materializes every partition of the run: the range's own ``rows_read`` /
    ``inserted`` / ``rejected`` go on that partition (so a 96k-key range does not show the whole run's
    3 million rows); the run's totals (retries, lookback and invalid-key scan included) go on all of them.
    """
    for key, counts in result.per_range.items():
        context.add_asset_metadata(counts.metadata(), partition_key=key)
    totals = {f"run_{name}": value for name, value in result.metadata().items()}
    return {
        **totals,
        "connection": section.connection,
        "warehouse": warehouse_type,
        "dagster/row_count": dg.MetadataValue.int(stored_rows),
        "schema_added_columns": ", ".join(added_columns(result.log)),
    }


def parse_partition_keys(keys: Iterable[str]) -> tuple[list[KeyRangeSpan], list[str]]:
    """The key ranges among ``keys`` and the keys that are not ranges (a name typed into the UI)."""
    spans, invalid = [], []
    for key in keys:
        try:
            spans.append(KeyRangeSpan.parse(key))
        except ValueError:
            invalid.append(key)
    return spans, invalid


def _raise_if_unhealthy(connection: ConnectionConfig, now: datetime) -> None:
    """Fail the tick while the section's connection is unhealthy (its status and fix as the message)."""
    unhealthy = skip_reason_if_unhealthy(connection, now)
    if unhealthy:
        # A failed tick (red, with the status and the fix), not a grey skip. The cursor is not moved, so the
        # next evaluation (a minute later) probes again and the sensor resumes as soon as the fix lands.
        raise SyncError(unhealthy)


def _new_range_starts(
    section: UsageSection, warehouse: Warehouse, requested: int | None
) -> tuple[tuple[int, int] | None, list[int]]:
    """The source's valid-key bounds and the starts of the ranges holding keys above ``requested``."""
    check_source(section, warehouse)  # raises the run's own KeyValidationError / WarehouseError
    bounds = warehouse.key_bounds(section.table, section.key)
    if bounds is None:
        return None, []
    return bounds, warehouse.occupied_ranges(section.table, section.key, section.partition_span, after=requested)


def _wanted_partition_keys(section: UsageSection, starts: Sequence[int], requested: int | None) -> list[str]:
    """The range partitions a tick requests: those holding new keys, else (with lookback) the tail range."""
    wanted = [span_at(start, section.partition_span).partition_key for start in starts]
    if not wanted and section.lookback and requested is not None:
        # Nothing new, but the lookback window must be re-read on every tick: request the tail range.
        wanted = [range_of(requested, section.partition_span).partition_key]
    return wanted


def _range_runs(
    section: UsageSection,
    partitions: dg.DynamicPartitionsDefinition,
    existing: Sequence[str],
    wanted: list[str],
    tick: str,
) -> dg.SensorResult:
    """One run per contiguous segment of ``wanted``, adding the wanted ranges the instance does not hold yet."""
    known = set(existing)
    new_keys = [k for k in wanted if k not in known]
    segments = contiguous_segments([*existing, *new_keys], set(wanted))
    return dg.SensorResult(
        run_requests=[range_run_request(section, segment, run_key=f"{tick}:{i}") for i, segment in enumerate(segments)],
        dynamic_partitions_requests=[partitions.build_add_request(new_keys)] if new_keys else [],
    )


def build_usage_sensor(section: UsageSection, config: Config) -> dg.SensorDefinition:
    """At each cadence tick: add the ranges that hold new keys as partitions and request runs for them.

    Planning is one GROUP BY in the warehouse over the keys above the last requested one
    (``Warehouse.occupied_ranges``): its cost grows with the ranges that hold rows, never with the key span,
    and outlier keys (33 digits, 1e40, negative, NaN) are no range at all (the run's invalid-key scan rejects
    them). The sensor's cursor holds the last tick and the highest key already requested, so it never needs
    the store (which a running sync may hold). The range holding that key is requested again with new rows:
    a range run resumes after its own cursor, so this repeats no work. With ``lookback``, every tick requests
    a run even when nothing new arrived, so late rows below the cursor are caught within one cadence.

    A source that cannot be planned (a missing table, an unusable key column) fails the tick with the
    same error the run gives; a failing connection (unreachable, refused credentials) fails it with the
    connection's status and fix.
    """
    partitions = usage_partitions(section)
    connection = config.connection(section.connection)

    @dg.sensor(
        name=f"usage_{section.name}_sensor",
        description=f"Pulls new rows of usage section '{section.name}' {section.cadence.describe()}.",
        asset_selection=[usage_asset_key(section)],
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.SensorEvaluationContext, warehouses: WarehousesResource) -> dg.SensorResult | dg.SkipReason:
        state = json.loads(context.cursor) if context.cursor else {}
        now = datetime.now(UTC)
        due = last_due(section.cadence, now)
        if state.get("last_tick") and datetime.fromisoformat(state["last_tick"]) >= due:
            return dg.SkipReason(f"not due: {section.cadence.describe()}, last tick {state['last_tick']}")
        _raise_if_unhealthy(connection, now)
        requested = None if state.get("requested_through") is None else int(state["requested_through"])
        with warehouses.open(section.connection) as warehouse:
            bounds, starts = _new_range_starts(section, warehouse, requested)
        state["last_tick"] = due.isoformat()
        wanted = _wanted_partition_keys(section, starts, requested)
        if not wanted:
            context.update_cursor(json.dumps(state))
            return dg.SkipReason(
                f"nothing new in {section.table} (max valid key {None if bounds is None else bounds[1]})"
            )
        existing = context.instance.get_dynamic_partitions(partitions.name or "")
        if bounds is not None:
            state["requested_through"] = max(bounds[1], requested or 0)
        context.update_cursor(json.dumps(state))
        tick = f"{section.name}:{state.get('requested_through')}" + (f":{now.isoformat()}" if section.lookback else "")
        return _range_runs(section, partitions, existing, wanted, tick)

    return _sensor


def contiguous_segments(ordered: Sequence[str], wanted: set[str]) -> list[list[str]]:
    """``wanted`` keys split into runs of keys that are adjacent in the partitions' order (insertion order).

    A run over a partition range receives every partition between its first and last key; splitting where
    another key (an unrelated range, a name typed into the UI) sits between them means a run receives
    exactly the wanted ranges.
    """
    segments: list[list[str]] = []
    current: list[str] = []
    for key in ordered:
        if key in wanted:
            current.append(key)
        elif current:
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return segments


def range_run_request(section: UsageSection, partition_keys: list[str], run_key: str | None = None) -> dg.RunRequest:
    """One run for consecutive range partitions (single-run backfill policy: one start-up, many ranges).

    Always expressed as a partition range (first == last for one range), so one code path serves both.
    """
    return dg.RunRequest(
        run_key=run_key,
        asset_selection=[usage_asset_key(section)],
        tags={RANGE_START_TAG: partition_keys[0], RANGE_END_TAG: partition_keys[-1]},
    )


def build_usage_defs(config: Config) -> dg.Definitions:
    """Assets, sensors and one job per usage section."""
    assets = [build_usage_asset(s, config) for s in config.usage]
    sensors = [build_usage_sensor(s, config) for s in config.usage]
    jobs = [
        dg.define_asset_job(
            f"usage_{s.name}_job",
            selection=[usage_asset_key(s)],
            description=f"Load key ranges of usage section '{s.name}' (for backfills from the CLI).",
        )
        for s in config.usage
    ]
    return dg.Definitions(assets=assets, sensors=sensors, jobs=jobs)
