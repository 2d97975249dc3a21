"""Company system fields derived from licenses, the way Planhat derives them.

Rules (one SQL statement, set-based):

- A license is *active* on ``today`` when ``fromDate <= today`` and it has not ended: ``toDate`` is
  null (open-ended), ``toDate >= today``, or it auto-renews.
- A license's MRR is ``mrr``, else ``arr / 12``; its ARR is ``arr``, else ``mrr * 12``.
- Company ``mrr``/``arr``: the sums over active licenses (0 when none is active).
- ``renewalDate``: the earliest ``toDate`` on or after today among active licenses.
- ``customerFrom``: the earliest ``fromDate`` of any license.
- ``customerTo``: the latest ``toDate`` when every license has ended; null while any is active or coming.
- ``status``: ``prospect`` (no license), ``customer`` (an active license), ``coming`` (only licenses
  starting after today), ``lost`` (all ended and the last-ending one has ``renewalStatus = 'lost'``),
  else ``canceled`` (all ended).
"""

from __future__ import annotations

from datetime import date

import duckdb

REFRESH_SQL = """
WITH lic AS (
    SELECT "companyId" AS cid, "fromDate" AS f, "toDate" AS t, "renewalStatus" AS rs,
           COALESCE(mrr, arr / 12.0) AS l_mrr, COALESCE(arr, mrr * 12.0) AS l_arr,
           ("fromDate" <= $today AND ("toDate" IS NULL OR "toDate" >= $today OR COALESCE("autoRenews", FALSE)))
               AS active,
           ("fromDate" > $today) AS coming
    FROM license WHERE "companyId" IS NOT NULL
), agg AS (
    SELECT cid,
           COALESCE(sum(l_mrr) FILTER (WHERE active), 0) AS mrr,
           COALESCE(sum(l_arr) FILTER (WHERE active), 0) AS arr,
           min(t) FILTER (WHERE active AND t >= $today) AS renewal,
           min(f) AS cust_from,
           bool_or(active) AS any_active, bool_or(coming) AS any_coming,
           max(t) AS last_to,
           arg_max(rs, t) AS last_rs
    FROM lic GROUP BY cid
), derived AS (
    SELECT c.id,
           COALESCE(a.mrr, 0) AS mrr, COALESCE(a.arr, 0) AS arr, a.renewal AS "renewalDate",
           a.cust_from AS "customerFrom",
           CASE WHEN a.cid IS NOT NULL AND NOT a.any_active AND NOT a.any_coming THEN a.last_to END
               AS "customerTo",
           CASE WHEN a.cid IS NULL THEN 'prospect'
                WHEN a.any_active THEN 'customer'
                WHEN a.any_coming THEN 'coming'
                WHEN lower(a.last_rs) = 'lost' THEN 'lost'
                ELSE 'canceled' END AS status
    FROM company c LEFT JOIN agg a ON a.cid = c.id
)
UPDATE company SET mrr = d.mrr, arr = d.arr, "renewalDate" = d."renewalDate", "customerFrom" = d."customerFrom",
       "customerTo" = d."customerTo", status = d.status, _updated_at = now()
FROM derived d
WHERE company.id = d.id AND (
    company.mrr IS DISTINCT FROM d.mrr OR company.arr IS DISTINCT FROM d.arr
    OR company."renewalDate" IS DISTINCT FROM d."renewalDate"
    OR company."customerFrom" IS DISTINCT FROM d."customerFrom"
    OR company."customerTo" IS DISTINCT FROM d."customerTo" OR company.status IS DISTINCT FROM d.status)
"""


def refresh_company_fields(con: duckdb.DuckDBPyConnection, today: date) -> int:
    """Apply the rules above; returns how many companies changed."""
    rows = con.execute(REFRESH_SQL, {"today": today}).fetchall()
    return int(rows[0][0]) if rows else 0
