"""CRM sync in Dagster: one asset per CRM section, an hourly job per connection and a full-sync job.

No `from __future__ import annotations` here: Dagster reads the run-config annotation at runtime.

- ``crm/<section>``: syncs one section (receive, send or both); materialize it alone from the UI (the
  arrows of one sync section in Planhat).
- ``crm_<connection>_sync`` / ``crm_<connection>_hourly``: every section of a connection, hourly. The
  schedule starts RUNNING when the connection sets ``crm_automation: true`` (Planhat's automation toggle),
  else STOPPED; it can be switched in the UI either way.
- ``crm_full_sync``: every CRM section with ``full: true`` (Planhat's "Full sync" button): launch it from
  the UI or with ``dagster job execute -j crm_full_sync``.
"""

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg

from planhat_pipelines.config import Config, ConnectionConfig, CrmSection
from planhat_pipelines.defs.behaviours import behaviour_keys
from planhat_pipelines.defs.failures import SYNC_RETRY_POLICY, sync_failures
from planhat_pipelines.defs.naming import crm_asset_key, full_sync_run_config, section_pool
from planhat_pipelines.defs.preview import preview_observation
from planhat_pipelines.defs.resources import StoreResource, WarehousesResource
from planhat_pipelines.defs.specs import crm_asset_spec, multi_asset_args
from planhat_pipelines.errors import SyncError
from planhat_pipelines.health import skip_reason_if_unhealthy
from planhat_pipelines.preview import crm_preview
from planhat_pipelines.sync.crm import CrmProgress, CrmResult, sync_section
from planhat_pipelines.sync.drift import added_columns

HOURLY_CRON = "0 * * * *"
FULL_SYNC_JOB = "crm_full_sync"


class CrmSyncConfig(dg.Config):
    """Run config of a CRM asset."""

    full: bool = False
    """Read the whole table even where the warehouse offers change tracking (the "Full sync" button)."""
    dry_run: bool = False
    """Preview: read, validate and compare as a sync would, write nothing (store and warehouse); the counts and
    sample changes are reported as an asset observation, and the assets after it in the run are skipped."""


def crm_job_name(connection: str) -> str:
    return f"crm_{connection}_sync"


def crm_schedule_name(connection: str) -> str:
    return f"crm_{connection}_hourly"


def _metadata(result: CrmResult, duration: float) -> dict[str, dg.MetadataValue]:
    return {
        "rows_read": dg.MetadataValue.int(result.rows_read),
        "inserted": dg.MetadataValue.int(result.inserted),
        "updated": dg.MetadataValue.int(result.updated),
        "unchanged": dg.MetadataValue.int(result.unchanged),
        "rejected": dg.MetadataValue.int(result.rejected),
        "resolved_rejects": dg.MetadataValue.int(result.resolved_rejects),
        "sent": dg.MetadataValue.int(result.sent),
        "deleted_in_warehouse": dg.MetadataValue.int(result.deleted),
        "duration_seconds": dg.MetadataValue.float(round(duration, 3)),
        "full_read": dg.MetadataValue.bool(result.full_read),
        "cursor_before": dg.MetadataValue.text(result.cursor_before or ""),
        "cursor_after": dg.MetadataValue.text(result.cursor_after or ""),
        "log": dg.MetadataValue.text("\n".join(result.log)),
        "schema_added_columns": dg.MetadataValue.text(", ".join(added_columns(result.log))),
    }


def build_crm_asset(section: CrmSection, config: Config) -> dg.AssetsDefinition:
    """The asset ``crm/<section>`` that runs :func:`~planhat_pipelines.sync.crm.sync_section`."""
    spec = crm_asset_spec(section, config)
    connection_type = config.connection(section.connection).type

    @dg.multi_asset(specs=[spec], **multi_asset_args(spec), pool=section_pool(section), retry_policy=SYNC_RETRY_POLICY)
    def _crm_asset(
        context: dg.AssetExecutionContext, config: CrmSyncConfig, store: StoreResource, warehouses: WarehousesResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
        started = time.monotonic()

        def progress(p: CrmProgress) -> None:
            # As it happens (every batch read, the store write, every send batch), so a long run shows
            # movement in its log in the UI and the CLI, not only the summary lines at the end.
            context.log.info(p.describe())

        with (
            sync_failures(f"crm/{section.name}"),
            store.open() as model_store,
            warehouses.open(section.connection) as warehouse,
        ):
            result = sync_section(
                section,
                model_store,
                warehouse,
                full=config.full,
                dagster_run_id=context.run_id,
                progress=progress,
                dry_run=config.dry_run,
            )
            stored_rows = model_store.count(section.model.slug)
        for line in result.log:
            context.log.info(f"{section.name}: {line}")
        if config.dry_run:
            yield preview_observation(spec.key, crm_preview(result))
            return
        metadata = _metadata(result, time.monotonic() - started)
        metadata |= {
            "connection": dg.MetadataValue.text(section.connection),
            "warehouse": dg.MetadataValue.text(connection_type),
            "dagster/row_count": dg.MetadataValue.int(stored_rows),
        }
        yield dg.MaterializeResult(metadata=metadata)

    return _crm_asset


def _hourly_schedule(
    name: str, connection: ConnectionConfig, job: "dg.UnresolvedAssetJobDefinition"
) -> dg.ScheduleDefinition:
    """The hourly sync of one connection; while its credentials fail, each tick fails with the status and fix.

    A schedule, not ``AutomationCondition.on_cron``: its tick is where the credential gate runs (one probe per
    connection per hour, a red tick naming the error while it fails), it has the per-connection on/off switch
    Planhat's automation toggle maps to (``crm_automation``), and one run syncs every section of the connection
    in dependency order. An automation condition can do neither the probe nor the per-connection switch.
    """

    @dg.schedule(
        name=crm_schedule_name(name),
        job=job,
        cron_schedule=HOURLY_CRON,
        default_status=(
            dg.DefaultScheduleStatus.RUNNING if connection.crm_automation else dg.DefaultScheduleStatus.STOPPED
        ),
        description=f"Hourly CRM sync of '{name}' (on when the connection sets crm_automation: true); "
        "while the connection's credentials fail, its ticks fail naming the error and the fix.",
    )
    def _hourly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        # A failed tick (red, with this message) rather than a grey skip: nobody misses a broken connection.
        reason = skip_reason_if_unhealthy(connection, datetime.now(UTC))
        if reason:
            raise SyncError(reason)
        return dg.RunRequest()

    return _hourly


def build_crm_defs(config: Config) -> dg.Definitions:
    """Assets for every CRM section, a job and hourly schedule per connection, and ``crm_full_sync``."""
    if not config.crm:
        return dg.Definitions()
    assets = [build_crm_asset(s, config) for s in config.crm]
    jobs: list[dg.UnresolvedAssetJobDefinition] = []
    schedules: list[dg.ScheduleDefinition] = []
    for name, connection in config.connections.items():
        keys = [crm_asset_key(s) for s in config.crm if s.connection == name]
        if not keys:
            continue
        job = dg.define_asset_job(
            crm_job_name(name),
            # The behaviours that read these sections run in the same run, after them (and before a send-only
            # Company section, which sends what they change).
            selection=keys + behaviour_keys(config, reading=keys),
            description=f"Sync every CRM section of connection '{name}' (the hourly automatic sync).",
        )
        jobs.append(job)
        schedules.append(_hourly_schedule(name, connection, job))
    jobs.append(
        dg.define_asset_job(
            FULL_SYNC_JOB,
            selection=[crm_asset_key(s) for s in config.crm] + behaviour_keys(config),
            config=full_sync_run_config(config.crm),
            description="Full sync of every CRM section (Planhat's 'Full sync' button).",
        )
    )
    return dg.Definitions(assets=assets, jobs=jobs, schedules=schedules)
