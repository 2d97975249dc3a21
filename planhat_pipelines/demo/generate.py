"""Fill the embedded DuckDB warehouse with realistic demo data, all in set-based SQL.

CRM tables are created once; every call appends a slice of new usage rows (with keys above the
current maximum), so a second ``make demo`` has something new to pick up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
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

-- Added after the first release: a demo warehouse from then gets the column (and its values) on the next seed.
ALTER TABLE crm_opportunities ADD COLUMN IF NOT EXISTS close_date DATE;
UPDATE crm_opportunities SET close_date = DATE '2026-01-15' + CAST(CAST(substr(opportunity_key, 5) AS INTEGER) * 3 % 300
    AS INTEGER) WHERE close_date IS NULL;

-- Churns: one company in 25. Half name the licenses that churned (by license key), half name none (every license
-- of the company running on the churn date churns). Recent ones leave running licenses (canceled), older ones
-- ended periods (lost).
CREATE TABLE IF NOT EXISTS crm_churns AS
SELECT 'CH-' || lpad(CAST(c AS VARCHAR), 5, '0') AS churn_key,
       'ACME-' || lpad(CAST(c AS VARCHAR), 5, '0') AS company_key,
       CASE WHEN c % 50 = 0 THEN DATE '2025-03-01' ELSE DATE '2026-10-01' END AS churn_date,
       CAST(to_json([(['price', 'product fit', 'champion left', 'budget'])[1 + c % 4]]) AS JSON) AS reasons,
       CASE WHEN c % 2 = 1 AND c - 1 BETWEEN 1 AND $licenses
            THEN CAST(to_json(['LIC-' || lpad(CAST(c - 1 AS VARCHAR), 6, '0')]) AS JSON) END AS license_keys,
       'Churn of company ' || c AS comment
FROM range(25, $companies + 1, 25) r(c);

-- Tasks: one in three done (each becomes a Conversation), the rest open.
CREATE TABLE IF NOT EXISTS crm_tasks AS
SELECT 'T-' || lpad(CAST(i AS VARCHAR), 6, '0') AS task_key,
       'ACME-' || lpad(CAST(i % $companies + 1 AS VARCHAR), 5, '0') AS company_key,
       (['Kick-off call', 'QBR', 'Renewal review', 'Training session'])[1 + i % 4] || ' ' || i AS title,
       CASE WHEN i % 3 = 0 THEN 'done' ELSE 'open' END AS status,
       TIMESTAMP '2026-09-01' + to_seconds(i * 7919 % (120 * 86400)) AS due_date
FROM range(1, $companies + 1) r(i);

-- NPS answers: the last one per company feeds the health score.
CREATE TABLE IF NOT EXISTS crm_nps AS
SELECT 'NPS-' || lpad(CAST(i AS VARCHAR), 6, '0') AS nps_key,
       'ACME-' || lpad(CAST(i % $companies + 1 AS VARCHAR), 5, '0') AS company_key,
       CAST((i * 7) % 11 AS INTEGER) AS score,
       TIMESTAMP '2026-06-01' + to_seconds(i * 3571 % (150 * 86400)) AS answered_at
FROM range(1, $companies * 3 // 5 + 1) r(i);

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

# How long before the seed an event happened, in seconds: spread over the last 40 days, so the calculated
# metrics' 7- and 30-day windows move; a third of the users (u % 3 = 0) were last seen 20-60 days ago, and every
# fifth company (c % 5 = 0) has been quiet for 35-75 days, so activity and health differ across companies.
USAGE_AGE_MACRO = """
CREATE OR REPLACE TEMP MACRO _usage_age(i, users, companies) AS
    i * 53 % (40 * 86400)
    + CASE WHEN (i % users + 1) % 3 = 0 THEN 20 * 86400 ELSE 0 END
    + CASE WHEN ((i % users + 1) % companies + 1) % 5 = 0 THEN 35 * 86400 ELSE 0 END
"""

EVENTS_SQL = """
INSERT INTO usage_events
SELECT i AS event_id,
       'user' || (i % $users + 1) || '@customer' || ((i % $users + 1) % $companies + 1) || '.example',
       (['login', 'view_dashboard', 'export_report', 'invite_user', 'create_project'])[1 + i % 5],
       $anchor - to_seconds(_usage_age(i, $users, $companies)),
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
       $anchor - to_seconds(i * 7919 % (45 * 86400))
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
    params: Mapping[str, object],
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
        con.execute(USAGE_AGE_MACRO)
        # Usage is dated back from the seed's day (midnight UTC), so each seed's rows land in the last weeks.
        anchor = {"anchor": datetime.combine(date.today(), time())}
        users = {"users": size.users, "companies": size.companies, **anchor}
        events = _append(con, "usage_events", "event_id", EVENTS_SQL, size.events, size.growth, users)
        metrics = _append(
            con,
            "usage_metrics",
            "metric_id",
            METRICS_SQL,
            size.metrics,
            size.growth,
            {"companies": size.companies, **anchor},
        )
        totals = con.execute(
            "SELECT (SELECT count(*) FROM usage_events), (SELECT count(*) FROM usage_metrics)"
        ).fetchall()[0]
        return SeedResult(events, metrics, int(totals[0]), int(totals[1]))
    finally:
        con.close()
