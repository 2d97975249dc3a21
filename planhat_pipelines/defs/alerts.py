"""Alert sensors: failed sync runs, and syncs that reject too large a share of the rows they read.

Both send through :func:`planhat_pipelines.alerts.send_alert` (logged, or POSTed to ``alerts.webhook_url``
with retries). An alert the webhook did not accept is never dropped:

- ``rejected_share_alert_sensor`` keeps its own cursor (a storage id). It judges new materializations oldest
  first and stops at the first one whose alert was not delivered: the cursor ends just before it (records
  judged before it, sent or under the threshold, still advance it) and the tick's skip message says what
  failed. The next tick judges that materialization again and sends it.
- ``sync_failure_alert_sensor`` is a Dagster run-failure sensor, whose cursor Dagster manages. In Dagster 1.13
  (``run_status_sensor_definition.py``) an ordinary exception from the sensor function is caught: the tick is
  marked failed but the cursor still moves past the run, so the alert would be lost. A ``DagsterError``
  passes through that boundary instead (``user_code_error_boundary`` re-raises it): the whole evaluation fails,
  and the sensor daemon keeps the previous cursor of a failed tick. So an undelivered alert raises
  :class:`AlertNotDeliveredError`: the tick fails visibly with the reason and the next tick sees the run again.
  Runs delivered earlier in that evaluation are remembered in this process, so they are not sent twice
  (after a code-server restart in between they could be: a duplicate rather than a lost alert).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import dagster as dg
import duckdb

from planhat_pipelines.alerts import RETRY_DELAYS_SECONDS, AlertDeliveryError, send_alert
from planhat_pipelines.config import Config
from planhat_pipelines.defs.naming import sync_asset_keys
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore

#: How often the rejected-share sensor looks at new materializations.
REJECTED_SHARE_INTERVAL_SECONDS = 300
_PAGE = 200
#: Failed runs whose alert this process delivered, remembered so a re-evaluated tick does not send them twice.
_DELIVERED_RUNS_KEPT = 1000


class AlertNotDeliveredError(dg.DagsterError):
    """A failed run's alert was not delivered: raised so the tick fails and Dagster keeps the cursor before it."""


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
        with ModelStore(config.store, lock_timeout=FAILURE_SENSOR_STORE_TIMEOUT_SECONDS) as store:
            closed = store.close_dead_runs(dagster_run_id=dagster_run_id)
    except (PlanhatPipelinesError, duckdb.Error) as exc:
        return f"sync log not updated now, the section's next run will ({str(exc).splitlines()[0]})"
    return f"closed {closed} sync-log row(s) the run left running"


def build_failure_alert_sensor(
    config: Config, *, retry_delays: Sequence[float] = RETRY_DELAYS_SECONDS
) -> dg.SensorDefinition:
    """``sync_failure_alert_sensor``: one alert per failed run of this code location.

    Args:
        config: The parsed config (its ``alerts`` section and the store).
        retry_delays: Seconds between webhook attempts (see :func:`send_alert`).

    A run whose alert is not delivered fails the tick with :class:`AlertNotDeliveredError` and is seen again
    by the next tick (see the module docstring).
    """
    delivered_runs: OrderedDict[str, None] = OrderedDict()

    @dg.run_failure_sensor(
        name="sync_failure_alert_sensor",
        description="Sends an alert (log or alerts.webhook_url) naming every failed run, its assets and the error.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.RunFailureSensorContext) -> None:
        run_id = context.dagster_run.run_id
        # First: closing the sync log must not wait for the webhook (and runs again harmlessly on a retry).
        context.log.info(close_sync_log_rows(config, run_id))
        if run_id in delivered_runs:
            context.log.info(f"alert for run {run_id} already sent")
            return
        title, text = failure_alert_text(context)
        try:
            delivered = send_alert(config.alerts, title, text, retry_delays=retry_delays)
        except AlertDeliveryError as exc:
            raise AlertNotDeliveredError(
                f"alert for failed run {run_id} not delivered; this tick fails and the next one tries again: {exc}"
            ) from exc
        delivered_runs[run_id] = None
        while len(delivered_runs) > _DELIVERED_RUNS_KEPT:
            delivered_runs.popitem(last=False)
        context.log.info(f"{'sent' if delivered else 'logged'} alert: {title}")

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


def _new_records_in_order(
    instance: dg.DagsterInstance, keys: Sequence[dg.AssetKey], after: int | None
) -> Iterator[tuple[dg.AssetKey, dg.EventLogRecord]]:
    """The new materializations of every key, oldest first across keys, so one cursor can stop at any of them."""

    def stream(key: dg.AssetKey) -> Iterator[tuple[dg.AssetKey, dg.EventLogRecord]]:
        for record in _new_records(instance, key, after):
            yield key, record

    yield from heapq.merge(*(stream(key) for key in keys), key=lambda pair: pair[1].storage_id)


def _rows_and_rejected(metadata: dg.RawMetadataMapping) -> tuple[float, float] | None:
    """(rows read, rejected) of a materialization that read rows; None when it cannot be judged."""
    # Usage runs put each range's own counts on its partition and the run's totals in run_*.
    rows = _numeric(metadata, "run_rows_read") or _numeric(metadata, "rows_read")
    rejected = _numeric(metadata, "run_rejected")
    rejected = _numeric(metadata, "rejected") if rejected is None else rejected
    if rows is None or rejected is None or rows <= 0:
        return None
    return rows, rejected


def _rejected_share_alert(
    key: dg.AssetKey, run_id: str, rows: float, rejected: float, threshold: float
) -> tuple[str, str]:
    share = rejected / rows
    return (
        f"{key.to_user_string()} rejected {share:.1%} of rows",
        f"run {run_id} read {rows:.0f} rows and rejected {rejected:.0f} ({share:.1%}, "
        f"threshold {threshold:.1%}). See the run's log and the store's rejected_rows table for "
        "the reasons; fix the source rows (or the section's mapping) and run it again.",
    )


def build_rejected_share_sensor(
    config: Config, *, retry_delays: Sequence[float] = RETRY_DELAYS_SECONDS
) -> dg.SensorDefinition:
    """``rejected_share_alert_sensor``: judges each new CRM/usage materialization once by rejected / rows_read.

    Args:
        config: The parsed config (its sections and ``alerts`` section).
        retry_delays: Seconds between webhook attempts (see :func:`send_alert`).

    An alert that is not delivered stops the tick with the cursor just before its materialization, so the
    next tick judges it again (see the module docstring).
    """
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
        undelivered = ""
        # A single-run backfill of many usage ranges materializes every partition of the run (each with its
        # range's own counts and the run's totals as run_*): judge each (asset, run) once, on the totals.
        seen_runs: set[tuple[dg.AssetKey, str]] = set()
        for key, record in _new_records_in_order(context.instance, keys, after):
            counts = None
            if record.asset_materialization is not None and (key, record.run_id) not in seen_runs:
                seen_runs.add((key, record.run_id))
                counts = _rows_and_rejected(record.asset_materialization.metadata)
            if counts is not None:
                rows, rejected = counts
                judged += 1
                if rejected / rows > threshold:
                    title, text = _rejected_share_alert(key, record.run_id, rows, rejected, threshold)
                    try:
                        send_alert(config.alerts, title, text, retry_delays=retry_delays)
                    except AlertDeliveryError as exc:
                        # Stop here: the cursor stays before this record, the next tick judges it again.
                        newest = max(newest, record.storage_id - 1)
                        undelivered = f"; alert not delivered, tried again next tick: {exc}"
                        context.log.error(str(exc))
                        break
                    alerted += 1
            newest = max(newest, record.storage_id)
        if newest:
            context.update_cursor(str(newest))
        return dg.SkipReason(
            f"judged {judged} new materialization(s), {alerted} over {threshold:.1%} rejected{undelivered}"
        )

    return _sensor


def build_alert_sensors(config: Config) -> list[dg.SensorDefinition]:
    """The failed-run and rejected-share alert sensors (webhook retries with the default delays)."""
    return [build_failure_alert_sensor(config), build_rejected_share_sensor(config)]
