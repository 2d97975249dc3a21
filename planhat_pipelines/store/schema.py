"""DDL for the model store, built from the model catalog.

Migrations add what is missing: a new standard field becomes ``ALTER TABLE ... ADD COLUMN``; custom fields
live in the ``custom`` JSON column and need no DDL. Three exceptions rewrite, each once and without losing a
row: money columns an older store kept as DOUBLE become DECIMAL (``ALTER COLUMN ... TYPE``), keys an older
store kept padded (and End User emails in mixed case) are normalised, and a first-release ``rejected_rows`` is
rebuilt with one record per source row.
"""

from __future__ import annotations

import duckdb

from planhat_pipelines.models import MODELS, FieldType, ModelSpec
from planhat_pipelines.models.catalog import email_sql, trim_sql
from planhat_pipelines.sql_quoting import quote_identifier as q

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
    return f'CREATE TABLE IF NOT EXISTS {table} ({columns}, PRIMARY KEY (section, "key"))'


REJECTED_ROWS_DDL = """CREATE TABLE IF NOT EXISTS rejected_rows (
        section VARCHAR NOT NULL, "key" VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL, reason VARCHAR NOT NULL,
        "value" VARCHAR, run_id VARCHAR, first_seen TIMESTAMP, last_seen TIMESTAMP, resolved_at TIMESTAMP,
        permanent BOOLEAN NOT NULL DEFAULT false, PRIMARY KEY (section, "key", fingerprint))"""

SYSTEM_TABLES = (
    *(_usage_ddl(table) for table in USAGE_TABLES.values()),
    """CREATE TABLE IF NOT EXISTS sync_cursors (
        section VARCHAR NOT NULL, scope VARCHAR NOT NULL, "value" VARCHAR,
        updated_at TIMESTAMP, PRIMARY KEY (section, scope))""",
    """CREATE TABLE IF NOT EXISTS sync_runs (
        run_id VARCHAR PRIMARY KEY, section VARCHAR NOT NULL, domain VARCHAR NOT NULL,
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
        section VARCHAR NOT NULL, "key" VARCHAR NOT NULL, hash UBIGINT NOT NULL,
        PRIMARY KEY (section, "key"))""",
    """CREATE TABLE IF NOT EXISTS okr_values (
        key_result VARCHAR NOT NULL, objective VARCHAR NOT NULL, recorded_at TIMESTAMP NOT NULL,
        "value" DOUBLE, source VARCHAR NOT NULL, progress DOUBLE, expected DOUBLE, status VARCHAR,
        error VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS connection_health (
        connection VARCHAR NOT NULL, checked_at TIMESTAMP NOT NULL, status VARCHAR NOT NULL,
        error VARCHAR, fix VARCHAR, expires_at TIMESTAMP)""",
)


def model_table_ddl(model: ModelSpec) -> str:
    cols = [f"{q('id')} VARCHAR PRIMARY KEY"]
    cols += [f"{q(f.name)} {f.type.duckdb_type}" for f in model.all_fields if f.name != "id"]
    cols += ["custom JSON", "_updated_at TIMESTAMP"]
    return f"CREATE TABLE IF NOT EXISTS {q(model.slug)} ({', '.join(cols)})"


def _existing_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ?",
        [table],
    ).fetchall()
    return {r[0] for r in rows}


def _column_types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ?",
        [table],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


#: Column types an older store used for a field whose catalog type is now DECIMAL (money was DOUBLE).
_FLOAT_TYPES = {"DOUBLE", "FLOAT", "REAL"}


#: The column comment that marks a key column as normalised, so the scan runs once per store, not per open.
_NORMALISED = "planhat_pipelines: keys normalised (trimmed; emails lower-cased)"


def _normalise_keys(con: duckdb.DuckDBPyConnection, model: ModelSpec) -> list[str]:
    """Bring keys an older store kept as the warehouse spelled them into the form the CRM sync now matches.

    sourceId/externalId lose surrounding whitespace, End User emails are also lower-cased (see
    ``sync/crm/``); otherwise the next sync, which matches the normalised form, would add a second
    record beside ' C-1 ' or 'Ann@X.com'. A value is left alone when another record normalises to the same
    key (two records would then share it); the CRM sync reports that key as a duplicate no more than before.
    Each column is done once: a column comment marks it, so opening the store does not scan it again.
    """
    comments = dict(
        con.execute(
            "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = ?",
            [model.slug],
        ).fetchall()
    )
    applied: list[str] = []
    for spec in model.all_fields:
        if spec.name not in ("sourceId", "externalId") and spec.type is not FieldType.EMAIL:
            continue
        if comments.get(spec.name) == _NORMALISED:
            continue
        col = q(spec.name)
        norm = email_sql(col) if spec.type is FieldType.EMAIL else trim_sql(col)
        changed = con.execute(
            f"UPDATE {q(model.slug)} SET {col} = {norm} WHERE {col} IS DISTINCT FROM {norm} AND {norm} IS NOT NULL "
            f"AND {norm} IN (SELECT {norm} FROM {q(model.slug)} WHERE {col} IS NOT NULL GROUP BY 1 HAVING count(*) = 1)"
        ).fetchall()[0][0]
        con.execute(f"COMMENT ON COLUMN {q(model.slug)}.{col} IS '{_NORMALISED}'")
        if changed:
            how = "trimmed and lower-cased" if spec.type is FieldType.EMAIL else "trimmed"
            applied.append(f"{model.slug}.{spec.name}: {changed} values {how}")
    return applied


def migrate(con: duckdb.DuckDBPyConnection, models: dict[str, ModelSpec] | None = None) -> list[str]:
    """Create missing tables and add missing columns; returns the statements that changed something.

    The one change of a model column's type: money that an older store kept as DOUBLE becomes DECIMAL
    (``ALTER COLUMN ... TYPE``, rows kept). A DOUBLE that no DECIMAL can hold (NaN, an infinity, more
    than 32 digits before the point; only a bug could have stored one) becomes null, and the derived
    Company fields are recomputed from the licenses on the next License or Company sync. The one change
    of data: keys an older store kept padded (and End User emails in mixed case) are normalised, see
    :func:`_normalise_keys`.
    """
    applied: list[str] = []
    for model in (models or MODELS).values():
        existing = _column_types(con, model.slug)
        if not existing:
            ddl = model_table_ddl(model)
            con.execute(ddl)
            applied.append(ddl)
            _normalise_keys(con, model)  # nothing to change in a new table: it only marks its key columns
            continue
        wanted = [(f.name, f.type.duckdb_type) for f in model.all_fields]
        wanted += [("custom", "JSON"), ("_updated_at", "TIMESTAMP")]
        for name, type_ in wanted:
            if name not in existing:
                ddl = f"ALTER TABLE {q(model.slug)} ADD COLUMN {q(name)} {type_}"
            elif type_.startswith("DECIMAL") and existing[name] in _FLOAT_TYPES:
                ddl = (
                    f"ALTER TABLE {q(model.slug)} ALTER COLUMN {q(name)} TYPE {type_} "
                    f"USING TRY_CAST({q(name)} AS {type_})"
                )
            else:
                continue
            con.execute(ddl)
            applied.append(ddl)
        applied += _normalise_keys(con, model)
    applied += _migrate_rejected_rows(con)
    for ddl in SYSTEM_TABLES:
        con.execute(ddl)
    # Issue is many-to-many with Company: a link view over the companyIds JSON array.
    con.execute(
        'CREATE OR REPLACE VIEW issue_company AS SELECT i.id AS "issueId", c.value AS "companyId" '
        'FROM issue i, LATERAL (SELECT unnest(CAST(i."companyIds" AS VARCHAR[])) AS value) c'
    )
    return applied


def _migrate_rejected_rows(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Rebuild a rejected_rows table of the first release (identity section + key + reason) as one record per row.

    The one migration that rewrites a table: DuckDB cannot change a primary key in place. Old records keep
    their key, reason, run and times; their fingerprint is ``v1:<reason>`` (they stood for one row each).
    Runs in the caller's connection; the copy and the swap commit together.
    """
    columns = _existing_columns(con, "rejected_rows")
    if not columns or "fingerprint" in columns:
        return []
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("ALTER TABLE rejected_rows RENAME TO rejected_rows_v1")
        con.execute(REJECTED_ROWS_DDL)
        con.execute(
            "INSERT INTO rejected_rows SELECT section, \"key\", 'v1:' || reason, reason, NULL, run_id, first_seen, "
            "last_seen, resolved_at, false FROM rejected_rows_v1"
        )
        con.execute("DROP TABLE rejected_rows_v1")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return ["rebuilt rejected_rows: one record per source row (fingerprint), permanent flag"]
