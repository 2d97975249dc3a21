"""One ``AssetSpec`` per sync section, from one function per domain (as dagster-dlt's translator does).

Everything the UI shows about a section's asset is decided here: key, group, kinds, tags, upstream deps,
description, code version, table metadata, freshness policy and (usage) partitions. The asset factories in
:mod:`planhat_pipelines.defs.crm` and :mod:`planhat_pipelines.defs.usage` pass the spec to
``@dg.multi_asset(specs=[spec])`` and add only what Dagster keeps on the op, not on ``AssetSpec`` (in 1.13):
the store pool, the retry policy and, for usage, the single-run backfill policy.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

import dagster as dg

from planhat_pipelines.config import Config, CrmSection, UsageSection
from planhat_pipelines.defs.behaviours import behaviour_keys
from planhat_pipelines.defs.naming import (
    CRM_GROUP,
    USAGE_GROUP,
    crm_asset_key,
    mapping_version,
    op_name,
    table_metadata,
    usage_asset_key,
    usage_table_metadata,
)

#: CRM sections sync hourly: late after 75 minutes without a materialization, failing after two missed syncs.
HOURLY_SYNC_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=2), warn_window=timedelta(minutes=75)
)


def usage_partitions(section: UsageSection) -> dg.DynamicPartitionsDefinition:
    """The section's key-range partitions (added by its sensor, or by `make demo` for the demo)."""
    return dg.DynamicPartitionsDefinition(name=f"usage_{section.name}_ranges")


# --- CRM -------------------------------------------------------------------------------------------------
def _describe_crm(section: CrmSection, connection_type: str) -> str:
    arrows = {"both": "<->", "send": "->", "receive": "<-"}
    mapped = ", ".join(
        f"{f.planhat} {arrows[f.direction.value]} {f.warehouse}{'.' + f.path if f.path else ''}" for f in section.fields
    )
    return (
        f"Syncs Planhat {section.model.name} records with {connection_type} "
        f"`{section.connection}.{section.table}` (direction: {section.direction.value}). Keys: Planhat "
        f"{section.planhat_key} = warehouse column `{section.warehouse_key}` (unique text). Fields: {mapped}. "
        f"Companies matched by {section.company_match}; nulls "
        f"{'overwrite' if section.null_overwrites else 'never overwrite'} stored values. Receive is diff-based "
        "and transactional; with `both`, receive runs first, so the warehouse wins a conflict."
    )


def company_deps(section: CrmSection, config: Config) -> list[dg.AssetKey]:
    """Sections that must run first on the same connection.

    - A company-owned model needs the receiving Company sections (its rows reference companies).
    - A send-only Company section needs the receiving Company and License sections and the behaviours that
      change licenses, so the derived fields it sends (ARR, MRR, renewal date, status, ...) are computed from
      this run's licenses, churns and won deals. A Company section that also receives cannot wait for licenses
      (License depends on it): its derived fields go out a run later.
    """
    same = [s for s in config.crm if s.connection == section.connection and s is not section]
    receiving_companies = [s for s in same if s.model.slug == "company" and s.direction.receives]
    if section.model.company_field == "companyId":
        return [crm_asset_key(s) for s in receiving_companies]
    if section.model.slug == "company" and not section.direction.receives:
        licenses = [s for s in same if s.model.slug == "license" and s.direction.receives]
        return [crm_asset_key(s) for s in (*receiving_companies, *licenses)] + behaviour_keys(config)
    return []


def crm_asset_spec(section: CrmSection, config: Config) -> dg.AssetSpec:
    """``crm/<section>``: the section's store table, hourly freshness, and the sections it waits for."""
    connection_type = config.connection(section.connection).type
    return dg.AssetSpec(
        key=crm_asset_key(section),
        group_name=CRM_GROUP,
        code_version=mapping_version(section),
        metadata=table_metadata(section.model),
        freshness_policy=HOURLY_SYNC_FRESHNESS,
        kinds={connection_type},
        deps=company_deps(section, config),
        description=_describe_crm(section, connection_type),
        tags={"domain": "crm"},
        # A dry run (``dry_run: true``) reports an observation and no materialization: its downstream assets in
        # the run are skipped, so nothing computes on what a preview did not write.
        skippable=True,
        owners=list(section.owners),
    )


# --- usage -----------------------------------------------------------------------------------------------
def _describe_usage(section: UsageSection, connection_type: str) -> str:
    target = "User Activities" if section.kind == "activities" else "Custom Metrics"
    mapped = ", ".join(f"{role} <- {col}" for role, col in section.fields.items())
    return (
        f"{target} for {section.model.name} from {connection_type} `{section.connection}.{section.table}`, "
        f"keyed by the incrementing column `{section.key}`; {section.cadence.describe()}, batches of "
        f"{section.batch_size:,} rows, partitions of {section.partition_span:,} keys. Records matched by "
        f"{section.record_match}. Fields: {mapped}."
    )


def usage_asset_spec(section: UsageSection, config: Config) -> dg.AssetSpec:
    """``usage/<section>``: its store table, partitioned by key range; freshness is the ``fresh`` check."""
    connection_type = config.connection(section.connection).type
    return dg.AssetSpec(
        key=usage_asset_key(section),
        group_name=USAGE_GROUP,
        code_version=mapping_version(section),
        metadata=usage_table_metadata(section),
        kinds={connection_type},
        partitions_def=usage_partitions(section),
        description=_describe_usage(section, connection_type),
        tags={"domain": "usage"},
        # A dry run (``dry_run: true``) reports an observation and no materialization: its downstream assets in
        # the run are skipped, so nothing computes on what a preview did not write.
        skippable=True,
        owners=list(section.owners),
    )


class OpArgs(TypedDict):
    """The op settings of a one-asset ``@dg.multi_asset`` that its spec decides."""

    name: str
    description: str | None
    code_version: str | None


def multi_asset_args(spec: dg.AssetSpec) -> OpArgs:
    """The op settings ``@dg.asset`` would derive from the same arguments: op name, description, code version.

    The op is named as ``@dg.asset`` names it (``usage__<section>``, ``crm__<section>``), because run config
    and the CLI's hints address it by that name.
    """
    return OpArgs(name=op_name(spec.key), description=spec.description, code_version=spec.code_version)
