"""OKR assets: one per key result, refreshed hourly from its warehouse query.

Thin: the assets read the config and call :func:`planhat_pipelines.okrs.refresh.refresh_key_result`.
No ``from __future__ import annotations`` here: Dagster inspects the asset function's ``context``
annotation at definition time and needs the real class, not a string.
"""

from datetime import UTC, datetime

import dagster as dg

from planhat_pipelines.config import Config, KeyResult
from planhat_pipelines.defs.naming import OKR_POOL
from planhat_pipelines.defs.resources import StoreResource, WarehousesResource
from planhat_pipelines.defs.specs import HOURLY_SYNC_FRESHNESS
from planhat_pipelines.okrs.current import KeyResultSummary, ObjectiveSummary, current_values
from planhat_pipelines.okrs.refresh import MODE_MANUAL, OkrValue, RefreshResult, refresh_key_result
from planhat_pipelines.okrs.status import Status

#: The Dagster group of every OKR asset.
OKR_GROUP = "okrs"
#: The job that refreshes every key result.
OKR_JOB_NAME = "okrs_refresh"
#: The schedule that runs :data:`OKR_JOB_NAME`.
OKR_SCHEDULE_NAME = "okrs_hourly"
#: Top of every hour, UTC.
OKR_CRON = "0 * * * *"


def okr_asset_key(key_result: str) -> dg.AssetKey:
    """The asset key of a key result: ``okrs/<key_result>``."""
    return dg.AssetKey([OKR_GROUP, key_result])


def _number(value: float) -> str:
    return f"{value:g}"


def _description(config: Config, kr: KeyResult) -> str:
    objective = next(o for o in config.objectives if o.name == kr.objective)
    connection = config.connection(kr.connection)
    title = f" ({kr.title})" if kr.title else ""
    if kr.direction == "kpi" or kr.target is None:
        goal = "A KPI: the value is tracked, with no target, progress or status."
    else:
        goal = (
            f"Target: from {_number(kr.start_value)} to {_number(kr.target)} ({kr.direction}) between "
            f"{kr.start_date} and {kr.end_date}. Status is On track when progress is at or above the expected "
            "progress (which rises linearly over the period), Behind when at most 25 points below it, At risk "
            "when further below."
        )
    return (
        f"Key result `{kr.name}`{title} of objective `{objective.name}` ({objective.title}).\n\n"
        f"{goal}\n\n"
        f"Value: the single number this query returns on connection `{kr.connection}` ({connection.type}):\n\n"
        f"```sql\n{kr.query.strip()}\n```\n\n"
        f"Each run appends the value to the store's `okr_values` table; the `{OKR_SCHEDULE_NAME}` schedule runs "
        "every hour. A manual check-in (`planhat-pipelines checkin`) stands until the next successful run. In "
        f"manual mode (`planhat-pipelines okr-mode {kr.name} manual`, or `checkin --manual`) a run skips the query "
        "and reports the value that stands, until the key result is switched back to automatic."
    )


def _definition_metadata(config: Config, kr: KeyResult) -> dict[str, dg.MetadataValue]:
    meta: dict[str, dg.MetadataValue] = {
        "objective": dg.MetadataValue.text(kr.objective),
        "connection": dg.MetadataValue.text(kr.connection),
        "direction": dg.MetadataValue.text(kr.direction),
        "query": dg.MetadataValue.md(f"```sql\n{kr.query.strip()}\n```"),
        "start_date": dg.MetadataValue.text(kr.start_date.isoformat()),
        "end_date": dg.MetadataValue.text(kr.end_date.isoformat()),
        "start_value": dg.MetadataValue.float(kr.start_value),
    }
    if kr.target is not None:
        meta["target"] = dg.MetadataValue.float(kr.target)
    return meta


def _row_metadata(row: OkrValue) -> dict[str, dg.MetadataValue]:
    """Numeric value/progress/expected (plotted by the UI) and the status as text."""
    assert row.value is not None  # refresh_key_result raises rather than returning a failure
    meta: dict[str, dg.MetadataValue] = {"value": dg.MetadataValue.float(row.value)}
    if row.progress is not None:
        meta["progress"] = dg.MetadataValue.float(row.progress)
    if row.expected is not None:
        meta["expected"] = dg.MetadataValue.float(row.expected)
    meta["status"] = dg.MetadataValue.text(Status(row.status).label if row.status else "KPI")
    meta["recorded_at"] = dg.MetadataValue.text(f"{row.recorded_at:%Y-%m-%d %H:%M:%S} UTC")
    return meta


def _standing_metadata(summary: KeyResultSummary) -> dict[str, dg.MetadataValue]:
    """The value that stands in manual mode, judged for today (progress and status as the summary shows)."""
    ev, current = summary.evaluation, summary.current
    if ev is None or current is None:
        return {"status": dg.MetadataValue.text("no value yet")}
    meta: dict[str, dg.MetadataValue] = {"value": dg.MetadataValue.float(ev.value)}
    if ev.progress is not None:
        meta["progress"] = dg.MetadataValue.float(ev.progress)
    if ev.expected is not None:
        meta["expected"] = dg.MetadataValue.float(ev.expected)
    meta["status"] = dg.MetadataValue.text(ev.status.label if ev.status else "KPI")
    meta["source"] = dg.MetadataValue.text(current.source)
    meta["recorded_at"] = dg.MetadataValue.text(f"{current.recorded_at:%Y-%m-%d %H:%M:%S} UTC")
    return meta


def _result_metadata(
    kr: KeyResult, result: RefreshResult, objectives: list[ObjectiveSummary]
) -> dict[str, dg.MetadataValue]:
    """The run's metadata: the key result's value (written, or standing in manual mode), its mode and its
    objective's progress as of this run (the other key results' latest values, whenever they were recorded)."""
    objective = next(o for o in objectives if o.objective.name == kr.objective)
    if result.skipped_manual:
        summary = next(s for s in objective.key_results if s.key_result.name == kr.name)
        meta = _standing_metadata(summary)
    else:
        assert result.row is not None  # automatic mode writes a row or raises
        meta = _row_metadata(result.row)
    meta["mode"] = dg.MetadataValue.text(result.mode)
    if objective.progress is not None:
        meta["objective_progress"] = dg.MetadataValue.float(objective.progress)
    return meta


def build_okr_asset(config: Config, kr: KeyResult) -> dg.AssetsDefinition:
    """The asset of one key result (key ``okrs/<name>``, group ``okrs``, in the store's pool).

    It needs the resources ``store`` and ``warehouse_<connection>``. A refused SQL, a failing query or
    a result that is not one number fails this asset only (after recording the error in the store). In
    manual mode it runs no query and materializes with ``mode: manual`` and the value that stands.
    """

    @dg.asset(
        key=okr_asset_key(kr.name),
        group_name=OKR_GROUP,
        kinds={config.connection(kr.connection).type},
        pool=OKR_POOL,
        description=_description(config, kr),
        metadata=_definition_metadata(config, kr),
        freshness_policy=HOURLY_SYNC_FRESHNESS,
    )
    def _okr(
        context: dg.AssetExecutionContext, store: StoreResource, warehouses: WarehousesResource
    ) -> dg.MaterializeResult:
        now = datetime.now(UTC)
        with store.open() as model_store, warehouses.open(kr.connection) as warehouse:
            result = refresh_key_result(model_store, warehouse, kr, now)
            objectives = current_values(model_store, config, now)
        if result.skipped_manual:
            context.log.info(f"{kr.name} is in {MODE_MANUAL} mode: its query did not run, its check-in stands")
        return dg.MaterializeResult(metadata=_result_metadata(kr, result, objectives))

    return _okr


def build_okr_defs(config: Config) -> dg.Definitions:
    """One asset per key result, the ``okrs_refresh`` job over all of them and the hourly schedule.

    The refresh stays a schedule rather than ``AutomationCondition.on_cron``: it runs every key result in one
    run whether or not anything upstream changed (an OKR query reads warehouse tables Dagster does not see
    change), which is what a schedule says and an ``on_cron`` condition (which waits for upstream updates) does
    not.

    Returns empty Definitions when the config has no key results. Resources are not included:
    ``definitions.py`` adds them for every domain.
    """
    if not config.key_results:
        return dg.Definitions()
    assets = [build_okr_asset(config, kr) for kr in config.key_results]
    job = dg.define_asset_job(
        OKR_JOB_NAME,
        selection=dg.AssetSelection.assets(*assets),
        description="Refresh every key result from its warehouse query.",
    )
    schedule = dg.ScheduleDefinition(
        name=OKR_SCHEDULE_NAME,
        job=job,
        cron_schedule=OKR_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Refresh the OKRs at the top of every hour.",
    )
    return dg.Definitions(assets=assets, jobs=[job], schedules=[schedule])
