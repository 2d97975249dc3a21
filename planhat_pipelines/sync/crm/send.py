"""The CRM send: the store's send fields of a section written to its warehouse table, changed records only.

Every record goes through one statement that builds its warehouse row (``__crm_send``), the target's
current rows are read for the comparison (``__crm_wh``), and only new or differing rows (``__crm_out``)
are merged into the warehouse in batches, under the warehouse's own spelling of a matched key. Each record
sent gets a change-log row (its sent columns, the warehouse's value → the store's). With ``mirror: true``,
target rows whose key matches no store record (``__crm_gone``) are then deleted, within the section's
``delete_limit`` (checked before anything is written, see :mod:`.deletes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from planhat_pipelines.config import CrmSection, FieldMapping
from planhat_pipelines.errors import SyncError
from planhat_pipelines.models import FieldType
from planhat_pipelines.models.catalog import MONEY_SCALE
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.sql_quoting import quote_literal as lit
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm.deletes import apply_mirror, log_sends, plan_mirror
from planhat_pipelines.sync.crm.fields import is_relation
from planhat_pipelines.sync.crm.keys import check_send_target, key_sql
from planhat_pipelines.sync.crm.progress import CrmProgressFn, Reporter
from planhat_pipelines.sync.crm.result import CrmResult
from planhat_pipelines.sync.crm.sql import DEFAULT_BATCH_SIZE, drop, json_path, stage
from planhat_pipelines.warehouses.base import Column, ColumnKind, TableInfo, Warehouse

#: The largest decimal scale a value is sent with (BigQuery BIGNUMERIC reports 38, which leaves no digit
#: before the point in a DECIMAL(38, s)); money has 6 decimals, so nothing of it is lost.
_MAX_SEND_SCALE = 12
_SEND_TYPES = {
    ColumnKind.INTEGER: "BIGINT",
    ColumnKind.FLOAT: "DOUBLE",
    ColumnKind.BOOLEAN: "BOOLEAN",
    ColumnKind.DATE: "DATE",
    ColumnKind.TIMESTAMP: "TIMESTAMP",
}
_TEMPS = ("__crm_send", "__crm_wh", "__crm_out", "__crm_gone")


@dataclass
class _SendColumns:
    """The warehouse row built from a store record ``m``: its select items, the joins they need, the types."""

    selects: list[str]
    kinds: dict[str, str] = field(default_factory=dict)  # warehouse column -> DuckDB type sent ("JSON": JSON text)
    joins: list[str] = field(default_factory=list)


def send(
    section: CrmSection,
    store: ModelStore,
    warehouse: Warehouse,
    *,
    run_id: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: CrmProgressFn | None = None,
    dry_run: bool = False,
    info: TableInfo | None = None,
) -> CrmResult:
    """Write the store's send fields of ``section`` to its warehouse table, new or changed records only.

    Args:
        section: The sync section (its direction must include send).
        store: The model store.
        warehouse: The section's warehouse.
        run_id: The sync-log run id the change-log rows are written under.
        batch_size: Rows per merge batch.
        progress: Called after every batch of the target read for the comparison (phase ``read``) and
            after every merge batch (phase ``send``).
        dry_run: Compare and count (and write the change-log rows, which a preview rolls back) but write
            nothing to the warehouse.

    Returns:
        The run's ``sent`` count and log lines.

    Raises:
        ReadOnlyTargetError: The target is a view (nothing is written).
        KeyValidationError: The warehouse key column is not text.
        SyncError: The section does not send.
        DeleteLimitError: ``mirror`` would delete more rows than the section's limit (nothing is written).
    """
    if not section.direction.sends:
        raise SyncError(f"section '{section.name}' has direction '{section.direction.value}' and does not send")
    info = check_send_target(section, warehouse, info)
    con = store.con
    result = CrmResult(section.name)
    columns = _send_columns(section, info, result.log)
    if not columns.kinds:
        result.log.append("no field is sent")
        return result
    try:
        _stage_records(con, section, columns, result)
        _stage_target(con, section, warehouse, columns.kinds, batch_size=batch_size, progress=progress)
        _stage_changes(con, section, columns.kinds)
        total = int(con.execute("SELECT count(*) FROM __crm_send").fetchall()[0][0])
        pending = int(con.execute("SELECT count(*) FROM __crm_out").fetchall()[0][0])
        gone = plan_mirror(store, section, enforce=not dry_run) if section.mirror else None
        if gone is not None and gone.refused:
            result.log.append(f"a real run would stop here: {gone.refused}")
        sending = Reporter(section.name, progress, "send", pending)
        if dry_run:
            result.sent = pending
        else:
            result.sent = _merge(
                con, section, warehouse, columns.kinds, pending, batch_size=batch_size, sending=sending
            )
        if pending:
            log_sends(store, section, run_id, columns.kinds)
        if gone is not None:
            result.mirrored = apply_mirror(store, section, warehouse, run_id, gone, dry_run=dry_run)
        verb = "would send" if dry_run else "sent"
        result.log.append(f"{verb} {result.sent} records to '{section.table}' ({total - pending} already up to date)")
        if gone is not None:
            verb = "would delete" if dry_run else "deleted"
            result.log.append(
                f"mirror: {verb} {result.mirrored} rows of '{section.table}' whose records left the store"
            )
        return result
    finally:
        drop(con, *_TEMPS)


# --- the warehouse row of a store record -----------------------------------------------------------------
def _send_columns(section: CrmSection, info: TableInfo, log: list[str]) -> _SendColumns:
    """The columns send writes, each sent field once; logs the fields that are not sent and why."""
    wkey = section.warehouse_key
    out = _SendColumns([f"CAST(m.{q(section.planhat_key)} AS VARCHAR) AS {q(wkey)}", "m.id AS __id"])
    used = {wkey.lower()}
    for i, fm in enumerate(section.send_fields()):
        if fm.path:
            log.append(f"field {fm.planhat} has a path and is not sent (receive only)")
            continue
        if fm.warehouse.lower() in used:
            if fm.warehouse.lower() != wkey.lower() or fm.planhat != section.planhat_key:
                log.append(f"field {fm.planhat}: column '{fm.warehouse}' is already sent; skipped")
            continue
        used.add(fm.warehouse.lower())
        target = _send_type(info.column(fm.warehouse))
        out.kinds[fm.warehouse] = target
        value, join = _send_value(section, fm, i)
        if join:
            out.joins.append(join)
        out.selects.append(_send_select(value, target, fm.warehouse))
    return out


def _send_type(col: Column) -> str:
    """The DuckDB type a value is sent to ``col`` as ("JSON" for a JSON column, which gets JSON text)."""
    target = "JSON" if col.kind is ColumnKind.JSON else _SEND_TYPES.get(col.kind, "VARCHAR")
    if col.kind is ColumnKind.DECIMAL:
        # Exact all the way: a DOUBLE would round 1234567890123456.78 to ...456.80 before the warehouse
        # cast it back. Scale as the column's (capped so 26 digits stay before the point).
        scale = MONEY_SCALE if col.scale is None else min(col.scale, _MAX_SEND_SCALE)
        target = "BIGINT" if col.scale == 0 else f"DECIMAL(38,{scale})"
    return target


def _send_value(section: CrmSection, fm: FieldMapping, i: int) -> tuple[str, str | None]:
    """SQL for the store value of ``fm`` as JSON, and the join it needs (a relation's company), if any."""
    if fm.planhat == "custom":
        return "CAST(m.custom AS JSON)", None
    if fm.custom_name:
        return f"json_extract(m.custom, {lit(json_path(fm.custom_name))})", None
    if is_relation(section, fm):
        join = f"LEFT JOIN company AS __c{i} ON __c{i}.id = m.{q(fm.planhat)}"
        return f"to_json(__c{i}.{q(section.company_match)})", join
    spec = section.model.field(fm.planhat)
    assert spec is not None
    value = f"CAST(m.{q(fm.planhat)} AS JSON)" if spec.type is FieldType.JSON else f"to_json(m.{q(fm.planhat)})"
    return value, None


def _send_select(value: str, target: str, column: str) -> str:
    """The select item converting a JSON ``value`` to the ``target`` type of warehouse ``column``."""
    # Every value goes through JSON once, so one conversion covers standard and custom fields alike.
    if target == "JSON":
        return f"CAST({value} AS VARCHAR) AS {q(column)}"
    scalar = f"(CASE WHEN json_type({value}) IN ('VARCHAR') THEN {value} ->> '$' ELSE CAST({value} AS VARCHAR) END)"
    return f"TRY_CAST({scalar} AS {target}) AS {q(column)}"


# --- the comparison with the warehouse and the merge ------------------------------------------------------
def _stage_records(
    con: duckdb.DuckDBPyConnection, section: CrmSection, columns: _SendColumns, result: CrmResult
) -> None:
    """Stage ``__crm_send``: every store record with a Planhat key as its warehouse row; log those without one."""
    model = section.model
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __crm_send AS SELECT {', '.join(columns.selects)} FROM {q(model.slug)} AS m "
        f"{' '.join(columns.joins)} WHERE m.{q(section.planhat_key)} IS NOT NULL"
    )
    missing = con.execute(f"SELECT count(*) FROM {q(model.slug)} WHERE {q(section.planhat_key)} IS NULL").fetchall()
    if missing[0][0]:
        result.log.append(f"{missing[0][0]} records have no {section.planhat_key} and were not sent")


def _stage_target(
    con: duckdb.DuckDBPyConnection,
    section: CrmSection,
    warehouse: Warehouse,
    kinds: dict[str, str],
    *,
    batch_size: int,
    progress: CrmProgressFn | None,
) -> None:
    """Stage ``__crm_wh``: the target's key and sent columns as the warehouse holds them now."""
    wh_cols = [section.warehouse_key, *kinds]
    target_rows = Reporter(section.name, progress, "read").counted(
        warehouse.read_batches(section.table, wh_cols, batch_size=batch_size)
    )
    stage(con, "__crm_wh", target_rows, wh_cols)


def _wh_value(column: str, kinds: dict[str, str]) -> str:
    """SQL for the warehouse's current value of ``column`` (row ``w``) as the type it is sent as."""
    t = kinds[column]
    return f"json(TRY_CAST(w.{q(column)} AS JSON))" if t == "JSON" else f"TRY_CAST(w.{q(column)} AS {t})"


def _new_value(section: CrmSection, column: str, kinds: dict[str, str]) -> str:
    """SQL for the value send writes to ``column``: the store's (row ``s``), or the warehouse's for a null."""
    s = f"json(s.{q(column)})" if kinds[column] == "JSON" else f"s.{q(column)}"
    return s if section.null_overwrites else f"COALESCE({s}, {_wh_value(column, kinds)})"


def _stage_changes(con: duckdb.DuckDBPyConnection, section: CrmSection, kinds: dict[str, str]) -> None:
    """Stage ``__crm_out``: the rows that are new or differ from the warehouse, numbered for the batches."""
    wkey = section.warehouse_key
    # Keys match trimmed (emails also case-insensitively), as on receive; a matched row is written
    # back under the warehouse's own spelling of its key, so the MERGE updates it instead of adding one.
    wh_key = key_sql(section, f"CAST(__crm_wh.{q(wkey)} AS VARCHAR)")
    store_key = key_sql(section, f"s.{q(wkey)}")
    outs = [f"COALESCE(CAST(w.{q(wkey)} AS VARCHAR), s.{q(wkey)}) AS {q(wkey)}", "s.__id"] + [
        f"CAST({_new_value(section, c, kinds)} AS {'VARCHAR' if kinds[c] == 'JSON' else kinds[c]}) AS {q(c)}"
        for c in kinds
    ]
    # The warehouse's values before the send, for the change log (``__old0``, ``__old1``, ... by column).
    outs += [f"{_wh_value(c, kinds)} AS __old{i}" for i, c in enumerate(kinds)]
    differs = " OR ".join(f"{_new_value(section, c, kinds)} IS DISTINCT FROM {_wh_value(c, kinds)}" for c in kinds)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __crm_out AS SELECT row_number() OVER () AS __i, {', '.join(outs)} "
        f"FROM __crm_send s LEFT JOIN (SELECT *, {wh_key} AS __wkey FROM __crm_wh "
        f"QUALIFY count(*) OVER (PARTITION BY {wh_key}) = 1) w "
        f"ON w.__wkey = {store_key} WHERE w.{q(wkey)} IS NULL OR {differs}"
    )


def _merge(
    con: duckdb.DuckDBPyConnection,
    section: CrmSection,
    warehouse: Warehouse,
    kinds: dict[str, str],
    pending: int,
    *,
    batch_size: int,
    sending: Reporter,
) -> int:
    """Merge the ``pending`` rows of ``__crm_out`` into the warehouse in batches; returns the records written."""
    wkey = section.warehouse_key
    names = ", ".join(q(c) for c in [wkey, *kinds])
    sent = 0
    for start in range(0, pending, batch_size):
        chunk = con.sql(
            f"SELECT {names} FROM __crm_out WHERE __i > {start} AND __i <= {start + batch_size}"
        ).to_arrow_table()
        merged = warehouse.merge(section.table, chunk, wkey, batch_size=batch_size)
        sent += merged.inserted + merged.updated
        sending.add(chunk.num_rows)
    return sent
