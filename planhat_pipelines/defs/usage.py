"""Usage sync in Dagster: one range-partitioned asset and one cadence sensor per usage section.

No `from __future__ import annotations` here: Dagster reads the run-config annotation at runtime.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from planhat_pipelines.config import Config, UsageSection
from planhat_pipelines.defs.resources import STORE_POOL, warehouse_resource_key
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.health import skip_reason_if_unhealthy
from planhat_pipelines.sync.ranges import KeyRangeSpan, ranges_between
from planhat_pipelines.sync.usage import run_usage

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


class UsageRunConfig(dg.Config):
    """Run config of a usage asset."""

    reread: bool = False
    """Read each range from its start again instead of resuming after its cursor (idempotent)."""


def usage_asset_key(section: UsageSection) -> dg.AssetKey:
    return dg.AssetKey(["usage", section.name])


def usage_partitions(section: UsageSection) -> dg.DynamicPartitionsDefinition:
    """The section's key-range partitions (added by its sensor, or by `make demo` for the demo)."""
    return dg.DynamicPartitionsDefinition(name=f"usage_{section.name}_ranges")


def _describe(section: UsageSection, connection_type: str) -> str:
    target = "User Activities" if section.kind == "activities" else "Custom Metrics"
    mapped = ", ".join(f"{role} <- {col}" for role, col in section.fields.items())
    return (
        f"{target} for {section.model.name} from {connection_type} `{section.connection}.{section.table}`, "
        f"keyed by the incrementing column `{section.key}`; {section.cadence.describe()}, batches of "
        f"{section.batch_size:,} rows, partitions of {section.partition_span:,} keys. Records matched by "
        f"{section.record_match}. Fields: {mapped}."
    )


def build_usage_asset(section: UsageSection, config: Config) -> dg.AssetsDefinition:
    connection = config.connection(section.connection)
    wh_key = warehouse_resource_key(section.connection)

    @dg.asset(
        key=usage_asset_key(section),
        group_name="usage",
        kinds={connection.type},
        partitions_def=usage_partitions(section),
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=STORE_POOL,
        required_resource_keys={"store", wh_key},
        description=_describe(section, connection.type),
        tags={"domain": "usage"},
    )
    def _usage_asset(context: dg.AssetExecutionContext, config: UsageRunConfig) -> dg.MaterializeResult:
        spans = [KeyRangeSpan.parse(k) for k in context.partition_keys]
        with context.resources.store.open() as store, getattr(context.resources, wh_key).open() as warehouse:
            result = run_usage(section, store, warehouse, spans, dagster_run_id=context.run_id, reread=config.reread)
        context.log.info(
            f"{section.name}: {result.rows_read} read, {result.inserted} inserted, {result.unchanged} already "
            f"loaded, {result.rejected} rejected over {len(spans)} range(s)"
        )
        return dg.MaterializeResult(metadata=result.metadata())

    return _usage_asset


def build_usage_sensor(section: UsageSection, config: Config) -> dg.SensorDefinition:
    """At each cadence tick: read the source's max key, add new range partitions, request one run for them.

    The sensor's cursor holds the last tick and the highest key already requested, so it never needs
    the store (which a running sync may hold). The range holding that key is requested again with new
    rows: a range run resumes after its own cursor, so this repeats no work.
    """
    partitions = usage_partitions(section)
    wh_key = warehouse_resource_key(section.connection)
    asset_key = usage_asset_key(section)
    connection = config.connection(section.connection)

    @dg.sensor(
        name=f"usage_{section.name}_sensor",
        description=f"Pulls new rows of usage section '{section.name}' {section.cadence.describe()}.",
        asset_selection=[asset_key],
        minimum_interval_seconds=60,
        required_resource_keys={wh_key},
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        state = json.loads(context.cursor) if context.cursor else {}
        due = section.cadence.last_due(datetime.now(UTC))
        if state.get("last_tick") and datetime.fromisoformat(state["last_tick"]) >= due:
            return dg.SkipReason(f"not due: {section.cadence.describe()}, last tick {state['last_tick']}")
        unhealthy = skip_reason_if_unhealthy(connection, datetime.now(UTC))
        if unhealthy:
            # Remember the tick, so a failing connection is probed once per cadence tick, not every minute.
            state["last_tick"] = due.isoformat()
            context.update_cursor(json.dumps(state))
            return dg.SkipReason(unhealthy)
        try:
            with getattr(context.resources, wh_key).open() as warehouse:
                bounds = warehouse.key_bounds(section.table, section.key)
                requested = state.get("requested_through")
                max_key = None if bounds is None else bounds[1]
                start = int(requested) if requested is not None else (None if bounds is None else bounds[0])
        except PlanhatPipelinesError as exc:
            return dg.SkipReason(f"connection '{section.connection}' failed: {exc}")
        state["last_tick"] = due.isoformat()
        if max_key is None or start is None or (requested is not None and max_key <= int(requested)):
            context.update_cursor(json.dumps(state))
            return dg.SkipReason(f"nothing new in {section.table} (max key {max_key})")
        spans = ranges_between(start, max_key, section.partition_span)
        keys = [s.partition_key for s in spans]
        existing = set(context.instance.get_dynamic_partitions(partitions.name or ""))
        new_keys = [k for k in keys if k not in existing]
        state["requested_through"] = max_key
        context.update_cursor(json.dumps(state))
        return dg.SensorResult(
            run_requests=[range_run_request(section, keys, run_key=f"{section.name}:{max_key}")],
            dynamic_partitions_requests=[partitions.build_add_request(new_keys)] if new_keys else [],
        )

    return _sensor


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
            partitions_def=usage_partitions(s),
            description=f"Load key ranges of usage section '{s.name}' (for backfills from the CLI).",
        )
        for s in config.usage
    ]
    return dg.Definitions(assets=assets, sensors=sensors, jobs=jobs)
