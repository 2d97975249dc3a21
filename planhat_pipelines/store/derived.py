"""Company system fields derived from licenses and churn records, the way Planhat derives them.

Rules (one set-based SQL statement; ``today`` is the day the fields are for):

- An **archived** license or Churn record (``_archived_at`` set: its source row left the warehouse, ``on_missing:
  archive``) counts nowhere, as if deleted: it is kept only to be restored if its row comes back. (Counted, a
  license the warehouse no longer has would keep its company's ARR, status and renewal date, and the portfolio's
  totals, which sum the companies' fields.)
- A **Churn record** *names* the licenses whose native ids its ``licenseIds`` (a JSON array) holds. One that
  names none (``licenseIds`` null or ``[]``) *covers* every license of its company that ran on the churn
  ``date``: ``fromDate <= date`` and (``toDate`` null, ``toDate >= date`` or ``autoRenews``). So a churn dated
  before a license started does not touch that later license (a returning customer). A Churn record without a
  ``date`` and without licenses covers nothing: it cannot say which licenses ran.
- A license is **churned** when its ``renewalStatus`` is ``lost`` (trimmed, case-insensitive), or a Churn
  record names or covers it. A churned license never auto-renews and is never *coming*. Its period ends on its
  ``toDate``; a churned license without one ends on the earliest date of the Churn records that churn it, and
  has already ended when only its ``renewalStatus`` says lost (nothing dates the end, so it counts as ended).
- A license **runs** on ``today`` when ``fromDate <= today`` and its period has not ended: an un-churned one
  when ``toDate`` is null, ``toDate >= today`` or it auto-renews; a churned one when its end (above) is
  ``>= today``. A license without a ``fromDate`` never runs.
- A license's MRR is ``mrr``, else ``arr / 12``; its ARR is ``arr``, else ``mrr * 12``.
- Company ``mrr``/``arr``: the sums over running licenses, churned or not (a canceled company keeps its revenue
  until the period ends; 0 when none runs). Money is ``DECIMAL(38,6)`` (see the catalog) and every step stays
  DECIMAL, so sums are exact. DuckDB divides DECIMALs in DOUBLE, so ``/ 12`` is done in integer millionths
  instead (:func:`div12_sql`): the ARR of a company's licenses that have no MRR is summed first and divided
  once, rounded half away from zero to 6 places (three such licenses of 344983.20 ARR in total give
  28748.600000, not 28748.599999999995).
- ``renewalDate``: the earliest ``toDate >= today`` among running licenses that are not churned (null when none,
  e.g. for a canceled company).
- ``customerFrom``: the earliest ``fromDate`` of any license.
- ``customerTo``: when no license runs or is coming, the latest end of a license (its ``toDate``, or for a
  churned license without one its churn date); null while any runs or is coming.
- ``status``, the first that holds:

  - ``prospect``: the company has no license;
  - ``customer``: a license runs that is not churned;
  - ``canceled``: a churned license still runs (churned but running reads canceled, not customer);
  - ``coming``: an un-churned license starts after today (the first license, or a booked next one);
  - ``lost``: every period has ended, churned or simply ended without renewal. (An earlier rule called a
    company whose licenses ended without a ``lost`` status ``canceled``; Planhat's canceled means "churned,
    still running", so an ended company is lost either way.)
"""

from __future__ import annotations

from datetime import date

import duckdb

from planhat_pipelines.models.catalog import FieldType, trim_sql

_MONEY = FieldType.MONEY.duckdb_type


def div12_sql(expr: str) -> str:
    """DuckDB SQL dividing the DECIMAL(38,6) ``expr`` by 12 exactly, rounded half away from zero to 6 places.

    The value becomes integer millionths (HUGEINT: up to 10**38, where DECIMAL(38,6) stops at 10**32),
    is divided with integer division (which truncates toward zero, so adding half the divisor with the
    value's sign rounds half away from zero) and is scaled back by a DECIMAL multiplication, which is exact.
    """
    micro = f"(CAST(trunc({expr}) AS HUGEINT) * 1000000 + CAST(({expr} - trunc({expr})) * 1000000 AS HUGEINT))"
    return f"(CAST(({micro} + 6 * sign({expr})) // 12 AS DECIMAL(38,0)) * CAST(0.000001 AS DECIMAL(7,6)))"


#: The licenses churn records churn: ``(id, d)`` per named or covered license, ``d`` the churn date (may be null).
#: ``licenseIds`` may hold a license's native id, externalId or sourceId: a warehouse's churn table knows its own
#: license keys, not Planhat's ids. Three equi-joins rather than one join on an OR, which DuckDB runs as a
#: nested loop.
CHURN_HITS_SQL = """
SELECT l.id, n.d
FROM (SELECT unnest(json_extract_string("licenseIds", '$[*]')) AS lid, "date" AS d FROM churn
      WHERE _archived_at IS NULL) n
JOIN license l ON l.id = n.lid
UNION ALL
SELECT l.id, n.d
FROM (SELECT unnest(json_extract_string("licenseIds", '$[*]')) AS lid, "date" AS d FROM churn
      WHERE _archived_at IS NULL) n
JOIN license l ON l."externalId" = n.lid AND l.id IS DISTINCT FROM n.lid
UNION ALL
SELECT l.id, n.d
FROM (SELECT unnest(json_extract_string("licenseIds", '$[*]')) AS lid, "date" AS d FROM churn
      WHERE _archived_at IS NULL) n
JOIN license l ON l."sourceId" = n.lid AND l.id IS DISTINCT FROM n.lid AND l."externalId" IS DISTINCT FROM n.lid
UNION ALL
SELECT l.id, c."date" AS d
FROM churn c JOIN license l ON l."companyId" = c."companyId"
WHERE c._archived_at IS NULL
  AND COALESCE(len(json_extract_string(c."licenseIds", '$[*]')), 0) = 0 AND c."date" IS NOT NULL
  AND l."fromDate" <= c."date"
  AND (l."toDate" IS NULL OR l."toDate" >= c."date" OR COALESCE(l."autoRenews", FALSE))
"""


def running_on_sql(day: str) -> str:
    """Whether a row of :func:`license_state_sql` runs on ``day`` (a DATE expression): started, and not ended
    (a churned license ends on its end or churn date and never renews; others run on while they auto-renew)."""
    return (
        f"COALESCE(f <= {day} AND CASE WHEN churned THEN churned_end >= {day} "
        f"ELSE t IS NULL OR t >= {day} OR auto_renews END, FALSE)"
    )


def license_state_sql(day: str) -> str:
    """SQL of every company-owned license's state on ``day`` (a DATE expression, e.g. ``$today``), by the rules above.

    Columns: ``id``, ``cid`` (the company), ``f``/``t`` (from/to date), ``churned``, ``running``, ``coming``,
    ``ends`` and the money columns ``l_mrr``, ``l_arr_only``, ``l_arr``. The status refresh and the daily company
    series (``company_daily``) both read it, so a license counts as active in one exactly when it runs in the other.
    """
    return f"""
    WITH hits AS ({CHURN_HITS_SQL}
    ), churned AS (
        SELECT id, min(d) AS churn_date FROM hits GROUP BY id
    ), lic0 AS (
        SELECT l.id, l."companyId" AS cid, l."fromDate" AS f, l."toDate" AS t,
               COALESCE(lower({trim_sql('l."renewalStatus"')}) = 'lost', FALSE) OR ch.id IS NOT NULL AS churned,
               COALESCE(l."toDate", ch.churn_date) AS churned_end,
               COALESCE(l."autoRenews", FALSE) AS auto_renews,
               CAST(l.mrr AS {_MONEY}) AS l_mrr,
               CAST(CASE WHEN l.mrr IS NULL THEN l.arr END AS {_MONEY}) AS l_arr_only,
               CAST(COALESCE(l.arr, l.mrr * 12) AS {_MONEY}) AS l_arr
        FROM license l LEFT JOIN churned ch ON ch.id = l.id
        WHERE l."companyId" IS NOT NULL AND l._archived_at IS NULL
    )
    SELECT *,
           {running_on_sql(day)} AS running,
           COALESCE(f > {day} AND NOT churned, FALSE) AS coming,
           CASE WHEN churned THEN churned_end ELSE t END AS ends
    FROM lic0
    """


REFRESH_SQL = f"""
WITH lic AS ({license_state_sql("$today")}
), agg AS (
    SELECT cid,
           COALESCE(sum(l_mrr) FILTER (WHERE running), 0) AS mrr_given,
           COALESCE(sum(l_arr_only) FILTER (WHERE running), 0) AS arr_without_mrr,
           COALESCE(sum(l_arr) FILTER (WHERE running), 0) AS arr,
           min(t) FILTER (WHERE running AND NOT churned AND t >= $today) AS renewal,
           min(f) AS cust_from,
           bool_or(running AND NOT churned) AS any_customer, bool_or(running) AS any_running,
           bool_or(coming) AS any_coming,
           max(ends) AS last_end
    FROM lic GROUP BY cid
), derived AS (
    SELECT c.id,
           CAST(COALESCE(a.mrr_given + {div12_sql("a.arr_without_mrr")}, 0) AS {_MONEY}) AS mrr,
           CAST(COALESCE(a.arr, 0) AS {_MONEY}) AS arr, a.renewal AS "renewalDate",
           a.cust_from AS "customerFrom",
           CASE WHEN a.cid IS NOT NULL AND NOT a.any_running AND NOT a.any_coming THEN a.last_end END
               AS "customerTo",
           CASE WHEN a.cid IS NULL THEN 'prospect'
                WHEN a.any_customer THEN 'customer'
                WHEN a.any_running THEN 'canceled'
                WHEN a.any_coming THEN 'coming'
                ELSE 'lost' END AS status
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


#: One company's (``$company``; NULL: all companies together) MRR and ARR on the first of every month from the first
#: license to ``$today``, and on ``$today``, by the same rules as the refresh: what a revenue chart draws, from the
#: licenses' periods alone (so it has a history on the first day, unlike ``company_daily``, which starts when the
#: store does). All companies together leave out archived companies, as the portfolio's totals do.
REVENUE_HISTORY_SQL = f"""
WITH lic AS (SELECT * FROM ({license_state_sql("$today")})
    WHERE (CAST($company AS VARCHAR) IS NULL AND cid NOT IN (SELECT id FROM company WHERE _archived_at IS NOT NULL))
       OR cid = $company),
days AS (
    SELECT CAST(unnest(generate_series(date_trunc('month', min(f)), CAST($today AS DATE), INTERVAL 1 MONTH)) AS DATE)
        AS d FROM lic WHERE f <= $today
    UNION SELECT CAST($today AS DATE)
)
SELECT days.d,
       CAST(COALESCE(sum(l_mrr) FILTER (WHERE {running_on_sql("days.d")}), 0)
            + {div12_sql(f"COALESCE(sum(l_arr_only) FILTER (WHERE {running_on_sql('days.d')}), 0)")} AS DOUBLE) AS mrr,
       CAST(COALESCE(sum(l_arr) FILTER (WHERE {running_on_sql("days.d")}), 0) AS DOUBLE) AS arr
FROM days, lic GROUP BY days.d ORDER BY days.d
"""


def refresh_company_fields(con: duckdb.DuckDBPyConnection, today: date) -> int:
    """Apply the rules above; returns how many companies changed."""
    rows = con.execute(REFRESH_SQL, {"today": today}).fetchall()
    return int(rows[0][0]) if rows else 0
