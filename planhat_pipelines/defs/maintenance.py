"""Store maintenance as a Dagster asset on a daily schedule (see ``store/maintenance.py`` for the steps)."""

from __future__ import annotations

import dagster as dg

from planhat_pipelines.defs.naming import MAINTENANCE_JOB, MAINTENANCE_POOL, STORE_GROUP, maintenance_asset_key
from planhat_pipelines.defs.resources import StoreResource
from planhat_pipelines.store.maintenance import maintain

#: When the daily maintenance runs (the daemon's time zone is UTC unless configured).
MAINTENANCE_CRON = "30 3 * * *"


def build_maintenance_defs() -> dg.Definitions:
    """The ``store/maintenance`` asset, its job and its daily schedule (running by default)."""

    @dg.asset(
        key=maintenance_asset_key(),
        group_name=STORE_GROUP,
        kinds={"duckdb"},
        pool=MAINTENANCE_POOL,
        description=(
            "Deletes change-log rows older than the store's change_log_days, flushes inlined rows, merges small "
            "files, expires snapshots older than the store's retention_days and deletes files no kept snapshot "
            "needs (after a day's grace). Other rows never change; the metadata says what it did "
            "(change_log_rows_pruned among it)."
        ),
    )
    def store_maintenance(store: StoreResource) -> dg.MaterializeResult:
        with store.open() as model_store:
            report = maintain(model_store)
        return dg.MaterializeResult(metadata=report.metadata())

    job = dg.define_asset_job(MAINTENANCE_JOB, selection=[maintenance_asset_key()])
    schedule = dg.ScheduleDefinition(
        name=f"{MAINTENANCE_JOB}_daily",
        job=job,
        cron_schedule=MAINTENANCE_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return dg.Definitions(assets=[store_maintenance], jobs=[job], schedules=[schedule])
