"""A daily series of each company's ARR, MRR, status and health inputs, for trends and the web pages.

One row per company per day (``company_daily``), written in the same transaction as the Company fields it
copies (after every License or Company receive): the day's last sync wins, so the row holds the day's
closing values. The health inputs kept are the ones the store knows: active licenses (running on the day, by the
status rules of ``derived.py``: a churned license never auto-renews), the company's usage
activities in the 30 days before the day, and its custom fields (where a health score synced from the
warehouse lives, e.g. ``custom.health_score``).
"""

from __future__ import annotations

from datetime import date

import duckdb

from planhat_pipelines.store.derived import license_state_sql

COMPANY_DAILY_DDL = """CREATE TABLE IF NOT EXISTS company_daily (
        "day" DATE NOT NULL, "companyId" VARCHAR NOT NULL, arr DECIMAL(38,6), mrr DECIMAL(38,6),
        status VARCHAR, phase VARCHAR, "activeLicenses" BIGINT, "activities30d" BIGINT, custom JSON,
        recorded_at TIMESTAMP NOT NULL)"""

_DAY_SQL = f"""
MERGE INTO company_daily t USING (
    SELECT CAST($day AS DATE) AS "day", c.id AS "companyId", c.arr, c.mrr, c.status, c.phase,
           COALESCE(l.n, 0) AS "activeLicenses", COALESCE(a.n, 0) AS "activities30d", c.custom
    FROM company c
    LEFT JOIN (SELECT cid AS "companyId", count(*) AS n FROM ({license_state_sql("CAST($day AS DATE)")})
               WHERE running GROUP BY 1) l ON l."companyId" = c.id
    LEFT JOIN (SELECT "companyId", count(*) AS n FROM user_activities
               WHERE "date" > CAST($day AS DATE) - INTERVAL 30 DAY AND "date" < CAST($day AS DATE) + INTERVAL 1 DAY
               GROUP BY 1) a ON a."companyId" = c.id
) s ON t."day" = s."day" AND t."companyId" = s."companyId"
WHEN MATCHED THEN UPDATE SET arr = s.arr, mrr = s.mrr, status = s.status, phase = s.phase,
    "activeLicenses" = s."activeLicenses", "activities30d" = s."activities30d", custom = s.custom,
    recorded_at = now()
WHEN NOT MATCHED THEN INSERT ("day", "companyId", arr, mrr, status, phase, "activeLicenses", "activities30d",
    custom, recorded_at) VALUES (s."day", s."companyId", s.arr, s.mrr, s.status, s.phase, s."activeLicenses",
    s."activities30d", s.custom, now())
"""


def record_company_day(con: duckdb.DuckDBPyConnection, day: date) -> int:
    """Write (or overwrite) every company's row for ``day``; returns how many rows were written."""
    return int(con.execute(_DAY_SQL, {"day": day}).fetchall()[0][0])
