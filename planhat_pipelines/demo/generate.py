"""Fill the embedded DuckDB warehouse with realistic demo data, all in set-based SQL.

CRM tables are created once; every call appends a slice of new usage rows (with keys above the
current maximum), so a second ``make demo`` has something new to pick up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

CRM_SQL = """
CREATE TABLE IF NOT EXISTS crm_companies AS
SELECT 'ACME-' || lpad(CAST(i AS VARCHAR), 5, '0') AS company_key,
       (['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', 'Vandelay', 'Stark', 'Wayne'])[1 + i % 8]
           || ' ' || (['Labs', 'Corp', 'Group', 'Systems', 'AB'])[1 + i % 5] || ' ' || i AS name,
       CASE WHEN i > 20 AND i % 10 = 0 THEN 'ACME-' || lpad(CAST(i % 20 + 1 AS VARCHAR), 5, '0') END AS parent_key,
       (['onboarding', 'adoption', 'expansion', 'renewal'])[1 + i % 4] AS phase,
       (['alice@vendor.io', 'bob@vendor.io', 'carol@vendor.io'])[1 + i % 3] AS owner,
       (['SE', 'DE', 'US', 'GB', 'FR'])[1 + i % 5] AS country,
       CAST(json_object('tier', (['gold', 'silver', 'bronze'])[1 + i % 3], 'seats', 5 + i % 200,
                        'industry', (['saas', 'retail', 'fintech', 'health'])[1 + i % 4],
                        'health', json_object('score', 40 + i % 60)) AS JSON) AS attributes
FROM range(1, $companies + 1) r(i);

CREATE TABLE IF NOT EXISTS crm_end_users AS
SELECT 'U-' || lpad(CAST(i AS VARCHAR), 6, '0') AS user_key,
       'user' || i || '@customer' || (i % $companies + 1) || '.example' AS email,
       'ACME-' || lpad(CAST(i % $companies + 1 AS VARCHAR), 5, '0') AS company_key,
       (['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald'])[1 + i % 6] AS first_name,
       (['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth'])[1 + i % 6] AS last_name,
       (['Admin', 'Champion', 'User', 'Buyer'])[1 + i % 4] AS position
FROM range(1, $users + 1) r(i);

CREATE TABLE IF NOT EXISTS crm_licenses AS
SELECT 'LIC-' || lpad(CAST(i AS VARCHAR), 6, '0') AS license_key,
       'ACME-' || lpad(CAST(i % $companies + 1 AS VARCHAR), 5, '0') AS company_key,
       (['Platform', 'Analytics add-on', 'Support Plus'])[1 + i % 3] AS product,
       DATE '2024-01-01' + CAST(i * 7 % 900 AS INTEGER) AS start_date,
       CASE WHEN i % 6 = 0 THEN NULL ELSE DATE '2024-01-01' + CAST(i * 7 % 900 + 365 AS INTEGER) END AS end_date,
       CAST(100 + (i * 37) % 4900 AS DOUBLE) AS mrr,
       i % 4 = 0 AS auto_renews,
       CASE WHEN i % 9 = 0 THEN 'lost' WHEN i % 5 = 0 THEN 'renewed' ELSE 'pending' END AS renewal_status
FROM range(1, $licenses + 1) r(i);

CREATE TABLE IF NOT EXISTS crm_opportunities AS
SELECT 'OPP-' || lpad(CAST(i AS VARCHAR), 6, '0') AS opportunity_key,
       'ACME-' || lpad(CAST(i % $companies + 1 AS VARCHAR), 5, '0') AS company_key,
       (['Renewal', 'Upsell', 'New business'])[1 + i % 3] || ' ' || i AS title,
       (['open', 'won', 'lost'])[1 + i % 3] AS status,
       CAST(1000 + (i * 131) % 90000 AS DOUBLE) AS arr
FROM range(1, $companies // 2 + 1) r(i);

-- What Planhat sends back: a table (writable) and a reporting view (read-only).
CREATE TABLE IF NOT EXISTS planhat_company_export (
    company_key VARCHAR, name VARCHAR, arr DOUBLE, mrr DOUBLE, status VARCHAR, renewal_date DATE);
CREATE OR REPLACE VIEW crm_company_report AS SELECT company_key, name, phase FROM crm_companies;

CREATE TABLE IF NOT EXISTS usage_events (
    event_id BIGINT, user_email VARCHAR, action VARCHAR, occurred_at TIMESTAMP, cnt INTEGER, weight DOUBLE,
    info JSON);
CREATE TABLE IF NOT EXISTS usage_metrics (
    metric_id BIGINT, company_key VARCHAR, dimension VARCHAR, value DOUBLE, measured_at TIMESTAMP);
"""

EVENTS_SQL = """
INSERT INTO usage_events
SELECT i AS event_id,
       'user' || (i % $users + 1) || '@customer' || ((i % $users + 1) % $companies + 1) || '.example',
       (['login', 'view_dashboard', 'export_report', 'invite_user', 'create_project'])[1 + i % 5],
       TIMESTAMP '2026-01-01' + to_seconds(i * 17),
       1 + i % 3, 1.0,
       CAST(json_object('browser', (['chrome', 'firefox', 'safari'])[1 + i % 3]) AS JSON)
FROM range($first, $last + 1) r(i)
"""

METRICS_SQL = """
INSERT INTO usage_metrics
SELECT i AS metric_id,
       'ACME-' || lpad(CAST(i % $companies + 1 AS VARCHAR), 5, '0'),
       (['api_calls', 'active_users', 'storage_gb'])[1 + i % 3],
       CAST((i * 7919) % 1000 AS DOUBLE),
       TIMESTAMP '2026-01-01' + to_seconds(i * 60)
FROM range($first, $last + 1) r(i)
"""


@dataclass(frozen=True)
class DemoSize:
    """How much demo data to make."""

    companies: int = 500
    users: int = 5_000
    licenses: int = 900
    events: int = 100_000
    metrics: int = 30_000
    growth: float = 0.02  # share of new usage rows appended by each later seed


@dataclass(frozen=True)
class SeedResult:
    events_added: int
    metrics_added: int
    events_total: int
    metrics_total: int


def _append(
    con: duckdb.DuckDBPyConnection,
    table: str,
    key: str,
    sql: str,
    first_batch: int,
    growth: float,
    params: dict[str, int],
) -> int:
    current = con.execute(f"SELECT COALESCE(max({key}), 0) FROM {table}").fetchall()[0][0]
    count = first_batch if current == 0 else max(1, int(current * growth))
    con.execute(sql, {**params, "first": current + 1, "last": current + count})
    return int(count)


def _connect_demo_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    """The demo warehouse; one written by DuckDB 2.0 (the previous release) is set aside and generated anew.

    It holds only generated demo data, so nothing is lost: the old file is kept beside it as ``*.duckdb2.bak``.
    """
    try:
        return duckdb.connect(str(path))
    except duckdb.IOException as exc:
        if "version number" not in str(exc):
            raise
    backup = path.with_name(path.name + "2.bak")
    path.replace(backup)
    print(f"demo warehouse {path} was written by a newer DuckDB: kept as {backup.name}, generating it anew")
    return duckdb.connect(str(path))


def seed_demo(path: str | Path, size: DemoSize | None = None) -> SeedResult:
    """Create the CRM tables if missing and append new usage rows; returns what was added."""
    size = size or DemoSize()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = _connect_demo_warehouse(Path(path))
    try:
        params = {"companies": size.companies, "users": size.users, "licenses": size.licenses}
        for statement in CRM_SQL.split(";"):
            used = {k: v for k, v in params.items() if f"${k}" in statement}
            if statement.strip():
                con.execute(statement, used)
        users = {"users": size.users, "companies": size.companies}
        events = _append(con, "usage_events", "event_id", EVENTS_SQL, size.events, size.growth, users)
        metrics = _append(
            con, "usage_metrics", "metric_id", METRICS_SQL, size.metrics, size.growth, {"companies": size.companies}
        )
        totals = con.execute(
            "SELECT (SELECT count(*) FROM usage_events), (SELECT count(*) FROM usage_metrics)"
        ).fetchall()[0]
        return SeedResult(events, metrics, int(totals[0]), int(totals[1]))
    finally:
        con.close()
