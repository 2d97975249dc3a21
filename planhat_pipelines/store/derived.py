"""Company system fields derived from licenses, the way Planhat derives them.

Rules (one SQL statement, set-based):

- A license is *active* on ``today`` when ``fromDate <= today`` and it has not ended: ``toDate`` is
  null (open-ended), ``toDate >= today``, or it auto-renews.
- A license's MRR is ``mrr``, else ``arr / 12``; its ARR is ``arr``, else ``mrr * 12``.
- Company ``mrr``/``arr``: the sums over active licenses (0 when none is active). Money is
  ``DECIMAL(38,6)`` (see the catalog) and every step stays DECIMAL, so sums are exact. DuckDB divides
  DECIMALs in DOUBLE, so ``/ 12`` is done in integer millionths instead (:func:`div12_sql`): the ARR of a
  company's licenses that have no MRR is summed first and divided once, rounded half away from zero to
  6 places (three such licenses of 344983.20 ARR in total give 28748.600000, not 28748.599999999995).
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

from planhat_pipelines.models.catalog import FieldType

_MONEY = FieldType.MONEY.duckdb_type


def div12_sql(expr: str) -> str:
    """DuckDB SQL dividing the DECIMAL(38,6) ``expr`` by 12 exactly, rounded half away from zero to 6 places.

    The value becomes integer millionths (HUGEINT: up to 10**38, where DECIMAL(38,6) stops at 10**32),
    is divided with integer division (which truncates toward zero, so adding half the divisor with the
    value's sign rounds half away from zero) and is scaled back by a DECIMAL multiplication, which is exact.
    """
    micro = f"(CAST(trunc({expr}) AS HUGEINT) * 1000000 + CAST(({expr} - trunc({expr})) * 1000000 AS HUGEINT))"
    return f"(CAST(({micro} + 6 * sign({expr})) // 12 AS DECIMAL(38,0)) * CAST(0.000001 AS DECIMAL(7,6)))"


REFRESH_SQL = f"""
WITH lic AS (
    SELECT "companyId" AS cid, "fromDate" AS f, "toDate" AS t, "renewalStatus" AS rs,
           CAST(mrr AS {_MONEY}) AS l_mrr, CAST(CASE WHEN mrr IS NULL THEN arr END AS {_MONEY}) AS l_arr_only,
           CAST(COALESCE(arr, mrr * 12) AS {_MONEY}) AS l_arr,
           ("fromDate" <= $today AND ("toDate" IS NULL OR "toDate" >= $today OR COALESCE("autoRenews", FALSE)))
               AS active,
           ("fromDate" > $today) AS coming
    FROM license WHERE "companyId" IS NOT NULL
), agg AS (
    SELECT cid,
           COALESCE(sum(l_mrr) FILTER (WHERE active), 0) AS mrr_given,
           COALESCE(sum(l_arr_only) FILTER (WHERE active), 0) AS arr_without_mrr,
           COALESCE(sum(l_arr) FILTER (WHERE active), 0) AS arr,
           min(t) FILTER (WHERE active AND t >= $today) AS renewal,
           min(f) AS cust_from,
           bool_or(active) AS any_active, bool_or(coming) AS any_coming,
           max(t) AS last_to,
           arg_max(rs, t) AS last_rs
    FROM lic GROUP BY cid
), derived AS (
    SELECT c.id,
           CAST(COALESCE(a.mrr_given + {div12_sql("a.arr_without_mrr")}, 0) AS {_MONEY}) AS mrr,
           CAST(COALESCE(a.arr, 0) AS {_MONEY}) AS arr, a.renewal AS "renewalDate",
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
