"""The ``pages`` group's stores: a generated warehouse synced into a model store with the real syncs.

:func:`make_warehouse` writes the CRM tables (companies as the ``crm`` group's, end users and licenses at the
demo's ratios) and skewed usage rows; :func:`build_store` (``cases.py pages_store``, in a child process) receives
the companies, end users and licenses with ``sync_section``, loads the usage with ``run_usage`` (which fills
``usage_daily``) and runs ``refresh_company_fields``. See ``pages.py`` for the measurements.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
from common import BENCH_DIR, COMPANIES_SQL, ROOT

#: Demo size: what ``make demo`` generates (planhat_pipelines/demo/generate.py, DemoSize).
DEMO_COMPANIES, DEMO_ROWS = 500, 100_000
#: End users and licenses per company, the demo's ratios (5,000 and 900 for 500 companies).
USERS_PER_COMPANY, LICENSES_PER_5_COMPANIES = 10, 9

# Same shapes as the demo's CRM tables, with keys wide enough for millions of rows. A user's company is
# (user - 1) % companies + 1; its email names the company so every email is unique.
END_USERS_SQL = """
CREATE OR REPLACE TABLE crm_end_users AS
SELECT 'U-' || lpad(CAST(i AS VARCHAR), 9, '0') AS user_key,
       'user' || i || '@c' || ((i - 1) % $companies + 1) || '.example' AS email,
       'C-' || lpad(CAST((i - 1) % $companies + 1 AS VARCHAR), 8, '0') AS company_key,
       (['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald'])[1 + i % 6] AS first_name,
       (['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth'])[1 + i % 6] AS last_name,
       (['Admin', 'Champion', 'User', 'Buyer'])[1 + i % 4] AS position
FROM range(1, $users + 1) r(i)
"""
# Licenses dated back from $today, so statuses, ARR and renewals ahead vary as in the demo.
LICENSES_SQL = """
CREATE OR REPLACE TABLE crm_licenses AS
SELECT 'L-' || lpad(CAST(i AS VARCHAR), 9, '0') AS license_key,
       'C-' || lpad(CAST((i - 1) % $companies + 1 AS VARCHAR), 8, '0') AS company_key,
       (['Platform', 'Analytics add-on', 'Support Plus'])[1 + i % 3] AS product,
       CAST($today AS DATE) - CAST(i * 7 % 900 AS INTEGER) AS start_date,
       CASE WHEN i % 6 = 0 THEN NULL ELSE CAST($today AS DATE) - CAST(i * 7 % 900 AS INTEGER) + 365 END AS end_date,
       CAST(100 + (i * 37) % 4900 AS DOUBLE) AS mrr,
       i % 4 = 0 AS auto_renews,
       CASE WHEN i % 9 = 0 THEN 'lost' WHEN i % 5 = 0 THEN 'renewed' ELSE 'pending' END AS renewal_status
FROM range(1, $licenses + 1) r(i)
"""
# Skewed like real usage: ten consecutive keys are one user's burst on one day (two of each action), the user is
# the cube of a hashed fraction, so low-numbered users (and their companies) are far busier than the rest (user 1
# alone has 1/cbrt(users) of the rows), and the day is hashed over the 365 days before $today.
EVENTS_SQL = """
INSERT INTO usage_events
SELECT i, 'user' || u || '@c' || ((u - 1) % $companies + 1) || '.example',
       (['login', 'view_dashboard', 'export_report', 'invite_user', 'create_project'])[1 + i % 5],
       CAST($today AS TIMESTAMP) - INTERVAL 1 DAY * (1 + hash(b, 'day') % 365) + to_seconds(i * 37 % 86400),
       CAST(1 + i % 3 AS INTEGER), 1.0,
       CAST(json_object('browser', (['chrome', 'firefox', 'safari'])[1 + i % 3]) AS JSON)
FROM (SELECT i, b, 1 + CAST(floor($users * pow((hash(b) % 1000000007) / 1000000007.0, 3)) AS BIGINT) AS u
      FROM (SELECT i, i // 10 AS b FROM range($first, $last + 1) r(i)))
"""
EVENTS_DDL = (
    "CREATE TABLE IF NOT EXISTS usage_events (event_id BIGINT, user_email VARCHAR, action VARCHAR, "
    "occurred_at TIMESTAMP, cnt INTEGER, weight DOUBLE, info JSON)"
)

END_USER_SECTION: dict[str, Any] = {
    "name": "end_users",
    "model": "enduser",
    "connection": "wh",
    "table": "crm_end_users",
    "direction": "receive",
    "keys": {"planhat": "externalId", "warehouse": "user_key"},
    "company_match": "externalId",
    "fields": [
        {"planhat": "email", "warehouse": "email"},
        {"planhat": "companyId", "warehouse": "company_key"},
        {"planhat": "firstName", "warehouse": "first_name"},
        {"planhat": "lastName", "warehouse": "last_name"},
        {"planhat": "position", "warehouse": "position"},
    ],
}
LICENSE_SECTION: dict[str, Any] = {
    "name": "licenses",
    "model": "license",
    "connection": "wh",
    "table": "crm_licenses",
    "direction": "receive",
    "keys": {"planhat": "externalId", "warehouse": "license_key"},
    "company_match": "externalId",
    "fields": [
        {"planhat": "companyId", "warehouse": "company_key"},
        {"planhat": "product", "warehouse": "product"},
        {"planhat": "fromDate", "warehouse": "start_date"},
        {"planhat": "toDate", "warehouse": "end_date"},
        {"planhat": "mrr", "warehouse": "mrr"},
        {"planhat": "autoRenews", "warehouse": "auto_renews"},
        {"planhat": "renewalStatus", "warehouse": "renewal_status"},
    ],
}


# --- warehouse (in a child process) -------------------------------------------------------------------------
def make_warehouse(path: str, companies: int, rows: int, today: str) -> None:
    """The CRM tables for ``companies`` companies and usage rows with keys 1..``rows`` (``today``: ISO date)."""
    con = duckdb.connect(path)
    try:
        con.execute(COMPANIES_SQL, {"companies": companies})
        con.execute(END_USERS_SQL, {"companies": companies, "users": companies * USERS_PER_COMPANY})
        licenses = companies * LICENSES_PER_5_COMPANIES // 5
        con.execute(LICENSES_SQL, {"companies": companies, "licenses": licenses, "today": date.fromisoformat(today)})
    finally:
        con.close()
    append_events(path, companies, 1, rows, today)


def append_events(path: str, companies: int, first: int, last: int, today: str) -> None:
    """Append usage rows with keys ``first..last`` (inclusive), for ``companies`` companies' end users."""
    con = duckdb.connect(path)
    try:
        con.execute(EVENTS_DDL)
        params = {"companies": companies, "users": companies * USERS_PER_COMPANY, "today": date.fromisoformat(today)}
        con.execute(EVENTS_SQL, {**params, "first": first, "last": last})
    finally:
        con.close()


def in_child(function: str, *args: object) -> None:
    """Run ``function(*args)`` of this module in a child process (its memory stays out of run.py's peak RSS)."""
    code = f"import sys; sys.path.insert(0, {str(BENCH_DIR)!r}); import pages_store; pages_store.{function}(*{args!r})"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- the store (a case run by cases.py in a child process) ------------------------------------------------------
def build_store(params: dict[str, Any]) -> dict[str, Any]:
    """The CRM sections' receive, ``run_usage`` over the pending ranges and ``refresh_company_fields``, timed each;
    then the store's sizes and the key of the company with the most usage (the profile measured)."""
    from planhat_pipelines.config import parse_config
    from planhat_pipelines.store import ModelStore
    from planhat_pipelines.sync.crm import sync_section
    from planhat_pipelines.sync.usage import pending_ranges, run_usage
    from planhat_pipelines.warehouses.factory import open_warehouse

    config = parse_config(params["config"], Path(params["config_path"]))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with ModelStore(config.store) as store, open_warehouse(config.connection("wh")) as warehouse:
        for section in config.crm:
            t = time.perf_counter()
            sync_section(section, store, warehouse, full=True)
            timings[f"crm_{section.name}_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        usage = config.usage[0]
        spans, _ = pending_ranges(usage, store, warehouse)
        result = run_usage(usage, store, warehouse, spans)
        timings["run_usage_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        store.refresh_company_fields()
        timings["refresh_company_fields_s"] = round(time.perf_counter() - t, 2)
        con = store.con
        sizes = {
            table: int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
            for table in ("company", "enduser", "license", "user_activities", "usage_daily")
        }
        top_id, top_rows = con.execute(
            'SELECT "companyId", sum("rows") FROM usage_daily WHERE "companyId" IS NOT NULL GROUP BY 1 '
            "ORDER BY 2 DESC, 1 LIMIT 1"
        ).fetchall()[0]
        key, name = con.execute(
            'SELECT COALESCE("externalId", id), name FROM company WHERE id = ?', [top_id]
        ).fetchall()[0]
    return {
        "seconds": time.perf_counter() - started,
        "rows": result.rows_read,
        "rejected": result.rejected,
        **timings,
        "sizes": sizes,
        "profile_key": key,
        "profile_name": name,
        "profile_usage_rows": int(top_rows),
    }
