"""Credentials health in Dagster, plus the alert sensors and the sync asset checks.

Per connection:

- ``health/<connection>``: an external asset standing for the connection's credentials, with the check
  ``connection_healthy``. The credentials sensor reports the check's result (passed, or failed with the
  client's error text and the fix in its description and metadata) and an observation on every probe, so
  the asset page shows the history. The check can also be executed from the UI: it probes once.
- ``credentials_<connection>_sensor``: probes every ``health.every_minutes``; its tick says
  ``ok`` / ``expiring`` / ``failing`` with the error and the fix, and it appends the status to the
  store's ``connection_health`` table. It never waits for the store: when another process (a sync) holds
  the DuckDB file for more than a second, the row is skipped (the tick says so); the asset events are
  still recorded.

:func:`build_health_defs` also returns the alert sensors (:mod:`planhat_pipelines.defs.alerts`) and the
checks on every sync asset (:mod:`planhat_pipelines.defs.checks`), so ``definitions.py`` merges them all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import duckdb

from planhat_pipelines.config import Config, ConnectionConfig
from planhat_pipelines.defs.alerts import build_alert_sensors
from planhat_pipelines.defs.checks import build_sync_checks
from planhat_pipelines.defs.naming import usage_asset_key
from planhat_pipelines.defs.resources import StoreResource
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.health import HealthStatus, check_connection, record_health

CHECK_NAME = "connection_healthy"


def health_asset_key(connection: str) -> dg.AssetKey:
    return dg.AssetKey(["health", connection])


def credentials_sensor_name(connection: str) -> str:
    return f"credentials_{connection}_sensor"


def _metadata(status: HealthStatus) -> dict[str, Any]:
    return {
        "status": status.status,
        "error": dg.MetadataValue.text(status.error or ""),
        "fix": dg.MetadataValue.text(status.fix or ""),
        "expires_at": status.expires_at.isoformat() if status.expires_at else "",
        "checked_at": status.checked_at.isoformat(),
    }


def _severity(status: HealthStatus) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if status.status == "failing" else dg.AssetCheckSeverity.WARN


def health_check_evaluation(status: HealthStatus) -> dg.AssetCheckEvaluation:
    """The ``connection_healthy`` result a sensor reports for ``status`` (expiring: failed with WARN)."""
    return dg.AssetCheckEvaluation(
        asset_key=health_asset_key(status.connection),
        check_name=CHECK_NAME,
        passed=status.status == "ok",
        severity=_severity(status),
        metadata=_metadata(status),
        description=status.describe(),
    )


def build_health_asset(connection: ConnectionConfig) -> dg.AssetSpec:
    return dg.AssetSpec(
        health_asset_key(connection.name),
        group_name="health",
        kinds={connection.type},
        description=(
            f"The credentials of connection '{connection.name}' ({connection.type}). Probed every "
            f"{connection.health.every_minutes} min by {credentials_sensor_name(connection.name)} (a token refresh "
            f"and SELECT 1); the {CHECK_NAME} check shows the client's error and the fix. Expiry warnings start "
            f"{connection.health.warn_days} days before health.key_rotation_date."
        ),
    )


def build_health_check(connection: ConnectionConfig) -> dg.AssetChecksDefinition:
    """``connection_healthy`` on ``health/<connection>``: executing it probes the connection once."""

    @dg.asset_check(
        asset=health_asset_key(connection.name),
        name=CHECK_NAME,
        description=f"Connection '{connection.name}' answers a trivial query with its configured credentials.",
        blocking=False,
    )
    def _check() -> dg.AssetCheckResult:
        status = check_connection(connection, datetime.now(UTC))
        return dg.AssetCheckResult(
            passed=status.status == "ok",
            severity=_severity(status),
            metadata=_metadata(status),
            description=status.describe(),
        )

    return _check


#: How long the credentials sensor waits for the store: a tick must end in seconds, never queue behind a sync.
SENSOR_STORE_TIMEOUT_SECONDS = 1.0


def _write_row(store: StoreResource, status: HealthStatus) -> str:
    """Append the status to connection_health unless the store is busy; returns what happened, for the tick.

    It never looks at which runs are in progress (a dead run can stay "started" in Dagster or "running" in the
    sync log for a long time): it tries the store once, for about a second, and moves on if a sync holds it.
    """
    try:
        with store.open(lock_timeout=SENSOR_STORE_TIMEOUT_SECONDS) as model_store:
            record_health(model_store, status)
    except (PlanhatPipelinesError, duckdb.Error) as exc:
        return f"connection_health row skipped: the store is busy ({str(exc).splitlines()[0]})"
    return "recorded in connection_health"


def build_credentials_sensor(connection: ConnectionConfig) -> dg.SensorDefinition:
    """``credentials_<connection>_sensor``: probe, report ``connection_healthy``, log the row, skip with the status."""

    @dg.sensor(
        name=credentials_sensor_name(connection.name),
        description=(
            f"Probes connection '{connection.name}' every {connection.health.every_minutes} min; the tick and the "
            f"{CHECK_NAME} check on health/{connection.name} show the status, the client's error and the fix."
        ),
        minimum_interval_seconds=connection.health.every_minutes * 60,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(store: StoreResource) -> dg.SensorResult:
        status = check_connection(connection, datetime.now(UTC))
        row = _write_row(store, status)
        observation = dg.AssetObservation(asset_key=health_asset_key(connection.name), metadata=_metadata(status))
        return dg.SensorResult(
            skip_reason=f"{status.describe()} ({row})",
            asset_events=[observation, health_check_evaluation(status)],
        )

    return _sensor


#: Evaluates the automation conditions of this code location's checks (the usage ``fresh`` checks, hourly).
AUTOMATION_SENSOR = "sync_checks_automation_sensor"


def build_automation_sensor(config: Config) -> dg.AutomationConditionSensorDefinition | None:
    """The sensor that runs the usage ``fresh`` checks on their cron automation condition (None without usage).

    Declared here, RUNNING by default, instead of relying on Dagster's implicit default automation sensor.
    """
    keys = [dg.AssetCheckKey(usage_asset_key(s), "fresh") for s in config.usage]
    if not keys:
        return None
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.checks(*keys),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs each usage section's `fresh` check hourly (its automation condition).",
    )


def build_health_defs(config: Config) -> dg.Definitions:
    """Health assets, checks and sensors per connection; the alert sensors; the checks on every sync asset."""
    connections = list(config.connections.values())
    automation = build_automation_sensor(config)
    return dg.Definitions(
        assets=[build_health_asset(c) for c in connections],
        asset_checks=[build_health_check(c) for c in connections] + build_sync_checks(config),
        sensors=[build_credentials_sensor(c) for c in connections]
        + build_alert_sensors(config)
        + ([automation] if automation else []),
    )
