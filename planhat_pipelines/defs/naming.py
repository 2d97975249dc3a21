"""The one naming scheme of the Dagster objects built from the config: asset keys, op names, jobs, sensors.

Checks, sensors, alerts, the demo and the CLI take their names from here, so a name is spelled once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import dagster as dg

from planhat_pipelines.config import Config, CrmSection, UsageSection
from planhat_pipelines.models import ModelSpec
from planhat_pipelines.store.schema import USAGE_COLUMNS, USAGE_TABLES

CRM_GROUP = "crm"
USAGE_GROUP = "usage"


def crm_asset_key(section: CrmSection) -> dg.AssetKey:
    """``crm/<section>``."""
    return dg.AssetKey([CRM_GROUP, section.name])


def usage_asset_key(section: UsageSection) -> dg.AssetKey:
    """``usage/<section>``."""
    return dg.AssetKey([USAGE_GROUP, section.name])


def sync_asset_keys(config: Config) -> list[dg.AssetKey]:
    """``crm/<section>`` and ``usage/<section>`` for every section of the config."""
    return [crm_asset_key(s) for s in config.crm] + [usage_asset_key(s) for s in config.usage]


STORE_GROUP = "store"
#: The maintenance asset's job and pool (one pass at a time; syncs go on beside it).
MAINTENANCE_JOB = "store_maintenance"
MAINTENANCE_POOL = "planhat_store_maintenance"


def maintenance_asset_key() -> dg.AssetKey:
    """``store/maintenance``."""
    return dg.AssetKey([STORE_GROUP, "maintenance"])


#: The pool of the OKR assets (each refresh appends one row; one at a time is plenty).
OKR_POOL = "planhat_okrs"


def section_pool(section: CrmSection | UsageSection) -> str:
    """The section's own pool (``planhat_crm_<name>`` / ``planhat_usage_<name>``).

    Every pool is limited to one slot (``concurrency.pools.default_limit: 1`` in dagster.yaml), so a section
    never runs twice at once, while different sections write the store in parallel, up to
    ``concurrency.runs.max_concurrent_runs`` runs.
    """
    kind = CRM_GROUP if isinstance(section, CrmSection) else USAGE_GROUP
    return f"planhat_{kind}_{section.name}"


def op_name(key: dg.AssetKey) -> str:
    """The op Dagster runs for an asset (``crm/companies`` -> ``crm__companies``), as run config names it."""
    return "__".join(key.path)


def reread_run_config(section: UsageSection) -> dict[str, object]:
    """Run config that re-reads a usage section's ranges from their start."""
    return {"ops": {op_name(usage_asset_key(section)): {"config": {"reread": True}}}}


def full_sync_run_config(sections: Iterable[CrmSection]) -> dict[str, object]:
    """Run config of a full CRM sync (Planhat's "Full sync" button) of ``sections``."""
    return {"ops": {op_name(crm_asset_key(s)): {"config": {"full": True}} for s in sections}}


def mapping_version(section: CrmSection | UsageSection) -> str:
    """A short fingerprint of the section's settings: the asset's code version, new whenever its mapping changes."""
    return hashlib.sha256(repr(section).encode()).hexdigest()[:12]


def table_metadata(model: ModelSpec) -> dict[str, object]:
    """Dagster's standard table metadata for a model's store table: its name and columns from the catalog."""
    columns = [dg.TableColumn(f.name, f.type.duckdb_type) for f in model.all_fields]
    return {"dagster/table_name": model.slug, "dagster/column_schema": dg.TableSchema(columns=columns)}


def usage_table_metadata(section: UsageSection) -> dict[str, object]:
    """Dagster's standard table metadata for the store table a usage section loads into."""
    table = USAGE_TABLES[section.kind]
    columns = [dg.TableColumn(name, type_) for name, type_ in USAGE_COLUMNS[table]]
    return {"dagster/table_name": table, "dagster/column_schema": dg.TableSchema(columns=columns)}


BEHAVIOURS_GROUP = "behaviours"
METRICS_GROUP = "metrics"
#: The job that runs every behaviour, calculated metric and the health score (the demo runs it; the automation
#: sensor runs each asset when its upstream sections land).
CUSTOMER_NUMBERS_JOB = "customer_numbers_refresh"
#: Evaluates the behaviours', metrics' and health score's eager automation conditions.
CUSTOMER_NUMBERS_SENSOR = "customer_numbers_automation_sensor"


def behaviour_asset_key(name: str) -> dg.AssetKey:
    """``behaviours/<name>`` (``churn_licenses``, ``won_deal_license``, ``done_task_conversation``)."""
    return dg.AssetKey([BEHAVIOURS_GROUP, name])


def metric_asset_key(name: str) -> dg.AssetKey:
    """``metrics/<name>`` for a calculated metric."""
    return dg.AssetKey([METRICS_GROUP, name])


def health_score_asset_key() -> dg.AssetKey:
    """``health_score``: the company health score (``h``), its inputs and its history."""
    return dg.AssetKey(["health_score"])
