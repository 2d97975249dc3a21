"""DDL for the model store, built from the model catalog.

The store is a DuckLake, so its tables have no primary keys: uniqueness is kept by the writers (the upsert
matches on the key, usage rows insert with an anti-join on ``(section, key)``) and checked by the asset checks.
Migrations add what is missing: a new standard field becomes ``ALTER TABLE ... ADD COLUMN``; custom fields live
in the ``custom`` JSON column and need no DDL. Stores of earlier releases (one DuckDB file, money as DOUBLE,
padded keys, first-release rejects) are copied in by ``legacy.py``, which also normalises their keys.
"""

from __future__ import annotations

import duckdb

from planhat_pipelines.models import MODELS, FieldType, ModelSpec
from planhat_pipelines.models.catalog import email_sql, trim_sql
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.store.calculated import CALCULATED_TABLES
from planhat_pipelines.store.change_log import CHANGE_LOG_DDL
from planhat_pipelines.store.company_daily import COMPANY_DAILY_DDL
from planhat_pipelines.store.okr_values import OKR_MODES_DDL
from planhat_pipelines.store.source_columns import SOURCE_COLUMNS_DDL
from planhat_pipelines.store.usage_daily import USAGE_DAILY_DDL, backfill_statements

#: The store table each usage section kind loads into.
USAGE_TABLES = {"activities": "user_activities", "metrics": "custom_metrics"}

_USAGE_HEAD = (("section", "VARCHAR"), ("key", "HUGEINT"), ("model", "VARCHAR"), ("recordId", "VARCHAR"))
_USAGE_REFS = (("companyId", "VARCHAR"), ("recordRef", "VARCHAR"))
#: The columns of the usage tables, in order (the DDL and Dagster's column schema are built from them).
USAGE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "user_activities": (
        *_USAGE_HEAD,
        *_USAGE_REFS,
        ("action", "VARCHAR"),
        ("date", "TIMESTAMP"),
        ("count", "DOUBLE"),
        ("weight", "DOUBLE"),
        ("info", "JSON"),
        ("runId", "VARCHAR"),
    ),
    "custom_metrics": (
        *_USAGE_HEAD,
        *_USAGE_REFS,
        ("dimensionId", "VARCHAR"),
        ("value", "DOUBLE"),
        ("date", "TIMESTAMP"),
        ("runId", "VARCHAR"),
    ),
}


def _usage_ddl(table: str) -> str:
    columns = ", ".join(
        f"{q(name)} {type_}{' NOT NULL' if name in ('section', 'key', 'model') else ''}"
        for name, type_ in USAGE_COLUMNS[table]
    )
    return f"CREATE TABLE IF NOT EXISTS {table} ({columns})"


REJECTED_ROWS_DDL = """CREATE TABLE IF NOT EXISTS rejected_rows (
        section VARCHAR NOT NULL, "key" VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL, reason VARCHAR NOT NULL,
        "value" VARCHAR, run_id VARCHAR, first_seen TIMESTAMP, last_seen TIMESTAMP, resolved_at TIMESTAMP,
        permanent BOOLEAN NOT NULL DEFAULT false)"""

SYSTEM_TABLES = (
    *(_usage_ddl(table) for table in USAGE_TABLES.values()),
    """CREATE TABLE IF NOT EXISTS sync_cursors (
        section VARCHAR NOT NULL, scope VARCHAR NOT NULL, "value" VARCHAR,
        updated_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS sync_runs (
        run_id VARCHAR NOT NULL, section VARCHAR NOT NULL, domain VARCHAR NOT NULL,
        dagster_run_id VARCHAR, started_at TIMESTAMP NOT NULL, ended_at TIMESTAMP,
        status VARCHAR NOT NULL, rows_read BIGINT DEFAULT 0, inserted BIGINT DEFAULT 0,
        updated BIGINT DEFAULT 0, unchanged BIGINT DEFAULT 0, rejected BIGINT DEFAULT 0,
        resolved_rejects BIGINT DEFAULT 0, sent BIGINT DEFAULT 0,
        cursor_before VARCHAR, cursor_after VARCHAR, error VARCHAR, notes VARCHAR)""",
    # One record per rejected source row: a row without a usable key is told apart by its fingerprint
    # (a hash of its values and its occurrence among identical rows). A permanent reject (a malformed key)
    # can never pass a retry, so retries do not re-read it.
    REJECTED_ROWS_DDL,
    """CREATE TABLE IF NOT EXISTS crm_source_hashes (
        section VARCHAR NOT NULL, "key" VARCHAR NOT NULL, hash UBIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS okr_values (
        key_result VARCHAR NOT NULL, objective VARCHAR NOT NULL, recorded_at TIMESTAMP NOT NULL,
        "value" DOUBLE, source VARCHAR NOT NULL, progress DOUBLE, expected DOUBLE, status VARCHAR,
        error VARCHAR)""",
    OKR_MODES_DDL,
    COMPANY_DAILY_DDL,
    SOURCE_COLUMNS_DDL,
    CHANGE_LOG_DDL,
    *CALCULATED_TABLES,
    """CREATE TABLE IF NOT EXISTS connection_health (
        connection VARCHAR NOT NULL, checked_at TIMESTAMP NOT NULL, status VARCHAR NOT NULL,
        error VARCHAR, fix VARCHAR, expires_at TIMESTAMP)""",
)


def model_table_ddl(model: ModelSpec) -> str:
    cols = [f"{q('id')} VARCHAR NOT NULL"]
    cols += [f"{q(f.name)} {f.type.duckdb_type}" for f in model.all_fields if f.name != "id"]
    cols += ["custom JSON", "_updated_at TIMESTAMP", "_archived_at TIMESTAMP"]
    return f"CREATE TABLE IF NOT EXISTS {q(model.slug)} ({', '.join(cols)})"


def _column_types(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """Every store table's columns and types, by table (one catalog query: each costs ~20 ms on DuckLake)."""
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = 'main'"
    ).fetchall()
    tables: dict[str, dict[str, str]] = {}
    for table, column, type_ in rows:
        tables.setdefault(table, {})[column] = type_
    return tables


def normalise_keys(con: duckdb.DuckDBPyConnection, model: ModelSpec) -> list[str]:
    """Bring keys an earlier release kept as the warehouse spelled them into the form the CRM sync matches.

    sourceId/externalId lose surrounding whitespace, End User emails are also lower-cased (see ``sync/crm/``);
    otherwise the next sync, which matches the normalised form, would add a second record beside ' C-1 ' or
    'Ann@X.com'. A value is left alone when another record normalises to the same key (two records would then
    share it); the CRM sync reports that key as a duplicate no more than before. Run once, on migration.
    """
    applied: list[str] = []
    for spec in model.all_fields:
        if spec.name not in ("sourceId", "externalId") and spec.type is not FieldType.EMAIL:
            continue
        col = q(spec.name)
        norm = email_sql(col) if spec.type is FieldType.EMAIL else trim_sql(col)
        changed = con.execute(
            f"UPDATE {q(model.slug)} SET {col} = {norm} WHERE {col} IS DISTINCT FROM {norm} AND {norm} IS NOT NULL "
            f"AND {norm} IN (SELECT {norm} FROM {q(model.slug)} WHERE {col} IS NOT NULL GROUP BY 1 HAVING count(*) = 1)"
        ).fetchall()[0][0]
        if changed:
            how = "trimmed and lower-cased" if spec.type is FieldType.EMAIL else "trimmed"
            applied.append(f"{model.slug}.{spec.name}: {changed} values {how}")
    return applied


#: Issue is many-to-many with Company: a link view over the companyIds JSON array.
ISSUE_COMPANY_VIEW = (
    'CREATE VIEW IF NOT EXISTS issue_company AS SELECT i.id AS "issueId", c.value AS "companyId" '
    'FROM issue i, LATERAL (SELECT unnest(CAST(i."companyIds" AS VARCHAR[])) AS value) c'
)


def missing_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables this release creates that the store has not got yet (a store no writer has opened since an
    upgrade: a reader cannot migrate it)."""
    wanted = [m.slug for m in MODELS.values()]
    wanted += [ddl.split("EXISTS", 1)[1].split("(", 1)[0].strip() for ddl in (*SYSTEM_TABLES, USAGE_DAILY_DDL)]
    present = set(_column_types(con))
    return [table for table in wanted if table not in present]


def migrate(con: duckdb.DuckDBPyConnection, models: dict[str, ModelSpec] | None = None) -> list[str]:
    """Create missing tables and add missing columns; returns the statements that changed something.

    Every statement is a no-op on an up-to-date store, so opening one writes no snapshot. Run it in a
    transaction (``ModelStore.atomic``): two processes creating a new store at once then retry, not clash.
    """
    applied: list[str] = []
    tables = _column_types(con)
    for model in (models or MODELS).values():
        existing = tables.get(model.slug, {})
        if not existing:
            ddl = model_table_ddl(model)
            con.execute(ddl)
            applied.append(ddl)
            continue
        wanted = [(f.name, f.type.duckdb_type) for f in model.all_fields]
        wanted += [("custom", "JSON"), ("_updated_at", "TIMESTAMP"), ("_archived_at", "TIMESTAMP")]
        for name, type_ in wanted:
            if name not in existing:
                ddl = f"ALTER TABLE {q(model.slug)} ADD COLUMN {q(name)} {type_}"
                con.execute(ddl)
                applied.append(ddl)
    for ddl in (*SYSTEM_TABLES, ISSUE_COMPANY_VIEW):
        con.execute(ddl)
    if "usage_daily" not in tables:
        # Created with its series of the usage rows already stored (a store of an earlier release), in this
        # transaction: from here on every usage batch appends its own rows' aggregates (see usage_daily.py).
        for sql in (USAGE_DAILY_DDL, *backfill_statements(USAGE_TABLES)):
            con.execute(sql)
            applied.append(sql)
    return applied
