"""Alert sensors: failed sync runs, and syncs that reject too large a share of the rows they read.

Both send through :func:`planhat_pipelines.alerts.send_alert` (logged, or POSTed to ``alerts.webhook_url``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dagster as dg
import duckdb

from planhat_pipelines.alerts import send_alert
from planhat_pipelines.config import Config
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore

#: How often the rejected-share sensor looks at new materializations.
REJECTED_SHARE_INTERVAL_SECONDS = 300
_PAGE = 200


def sync_asset_keys(config: Config) -> list[dg.AssetKey]:
    """``crm/<section>`` and ``usage/<section>`` for every section of the config."""
    return [dg.AssetKey(["crm", s.name]) for s in config.crm] + [dg.AssetKey(["usage", s.name]) for s in config.usage]


def _innermost(error: Any) -> Any:
    # Dagster wraps the user's exception ("Error occurred while executing op ..."); the cause is what happened.
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error


def _run_assets(context: dg.RunFailureSensorContext) -> list[str]:
    run = context.dagster_run
    if run.asset_selection:
        return sorted(key.to_user_string() for key in run.asset_selection)
    records = context.instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    keys = {r.event_log_entry.dagster_event.asset_key for r in records if r.event_log_entry.dagster_event}
    return sorted(k.to_user_string() for k in keys if k is not None)


def failure_alert_text(context: dg.RunFailureSensorContext) -> tuple[str, str]:
    """(title, text) naming the run, its job, its assets and the errors of the failed steps."""
    run = context.dagster_run
    assets = _run_assets(context)
    errors = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        if data is not None and data.error is not None:
            error = _innermost(data.error)
            errors.append(f"{event.step_key}: {error.message.strip()}")
    if not errors:
        errors.append(context.failure_event.message or "the run failed (see its event log)")
    title = f"Sync run failed: {', '.join(assets) or run.job_name}"
    text = f"run {run.run_id} of job {run.job_name}\nassets: {', '.join(assets) or '(none recorded)'}\n" + "\n".join(
        f"error: {e}" for e in errors
    )
    return title, text


#: How long the failure sensor waits for the store before leaving the sync log to the section's next run.
FAILURE_SENSOR_STORE_TIMEOUT_SECONDS = 1.0


def close_sync_log_rows(config: Config, dagster_run_id: str) -> str:
    """Close the sync-log rows a failed Dagster run left ``running`` (its worker died); says what happened.

    A run that fails normally finishes its rows itself; rows still ``running`` belong to a worker that was
    killed. They keep the counts their committed batches recorded. If a sync holds the store, the section's
    next run closes them instead (:meth:`ModelStore.start_run`).
    """
    try:
        with ModelStore(config.store_path, lock_timeout=FAILURE_SENSOR_STORE_TIMEOUT_SECONDS) as store:
            closed = store.close_dead_runs(dagster_run_id=dagster_run_id)
    except (PlanhatPipelinesError, duckdb.Error) as exc:
        return f"sync log not updated now, the section's next run will ({str(exc).splitlines()[0]})"
    return f"closed {closed} sync-log row(s) the run left running"


def build_failure_alert_sensor(config: Config) -> dg.SensorDefinition:
    """``sync_failure_alert_sensor``: one alert per failed run of this code location."""

    @dg.run_failure_sensor(
        name="sync_failure_alert_sensor",
        description="Sends an alert (log or alerts.webhook_url) naming every failed run, its assets and the error.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.RunFailureSensorContext) -> None:
        title, text = failure_alert_text(context)
        delivered = send_alert(config.alerts, title, text)
        context.log.info(f"{'sent' if delivered else 'logged'} alert: {title}")
        context.log.info(close_sync_log_rows(config, context.dagster_run.run_id))

    return _sensor


def _numeric(metadata: dg.RawMetadataMapping, name: str) -> float | None:
    entry = metadata.get(name)
    value = getattr(entry, "value", entry)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _new_records(instance: dg.DagsterInstance, key: dg.AssetKey, after: int | None) -> Iterable[dg.EventLogRecord]:
    """Materializations of ``key`` after storage id ``after`` (oldest first); only the latest one without a cursor."""
    if after is None:
        yield from instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
        return
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=_PAGE, cursor=cursor, ascending=True
        )
        yield from page.records
        if not page.has_more:
            return
        cursor = page.cursor


def build_rejected_share_sensor(config: Config) -> dg.SensorDefinition:
    """``rejected_share_alert_sensor``: judges each new CRM/usage materialization once by rejected / rows_read."""
    keys = sync_asset_keys(config)
    threshold = config.alerts.rejected_share_threshold

    @dg.sensor(
        name="rejected_share_alert_sensor",
        description=(
            f"Every 5 minutes: alerts when a CRM or usage sync rejected more than {threshold:.1%} of the rows it "
            "read (metadata rejected / rows_read of each new materialization)."
        ),
        minimum_interval_seconds=REJECTED_SHARE_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        after = int(context.cursor) if context.cursor else None
        newest = after or 0
        judged = alerted = 0
        for key in keys:
            # A single-run backfill of many usage ranges materializes each partition with the run's totals:
            # judge each (asset, run) once.
            seen_runs: set[str] = set()
            for record in _new_records(context.instance, key, after):
                newest = max(newest, record.storage_id)
                materialization = record.asset_materialization
                if materialization is None or record.run_id in seen_runs:
                    continue
                seen_runs.add(record.run_id)
                rows = _numeric(materialization.metadata, "rows_read")
                rejected = _numeric(materialization.metadata, "rejected")
                if rows is None or rejected is None or rows <= 0:
                    continue
                judged += 1
                share = rejected / rows
                if share > threshold:
                    alerted += 1
                    send_alert(
                        config.alerts,
                        f"{key.to_user_string()} rejected {share:.1%} of rows",
                        f"run {record.run_id} read {rows:.0f} rows and rejected {rejected:.0f} ({share:.1%}, "
                        f"threshold {threshold:.1%}). See the run's log and the store's rejected_rows table for "
                        "the reasons; fix the source rows (or the section's mapping) and run it again.",
                    )
        if newest:
            context.update_cursor(str(newest))
        return dg.SkipReason(f"judged {judged} new materialization(s), {alerted} over {threshold:.1%} rejected")

    return _sensor


def build_alert_sensors(config: Config) -> list[dg.SensorDefinition]:
    """The failed-run and rejected-share alert sensors."""
    return [build_failure_alert_sensor(config), build_rejected_share_sensor(config)]
