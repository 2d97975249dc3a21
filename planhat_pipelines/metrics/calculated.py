"""Calculated metrics: a daily series per record computed from the synced usage, as Planhat computes them.

Rules (set-based SQL, one transaction per metric):

- Source rows: ``activities`` reads ``user_activities`` (only the ``actions`` listed, when any); ``metrics`` reads
  the ``custom_metrics`` rows of the metric's dimension.
- A row belongs to a company by its ``companyId`` (an end user's activities roll up to their company), and to an
  end user, asset or project by its ``recordId`` when the row's ``model`` is that model.
- Day D's value covers the rows dated within the ``window_days`` whole days ending with D. ``count`` counts rows;
  ``sum`` and ``average`` read the activity ``count`` (null counts 1) or the metric ``value`` (nulls left out);
  ``last`` is the value of the latest row (ties broken by section and key, so a re-run picks the same row);
  ``distinct_users`` counts the distinct end users (rows of model ``enduser``) with an activity.
- Each run computes the days ``today - history_days + 1`` to ``today``. A record with any row in those days or
  the window before them gets a value for every day: 0 for count, sum and distinct_users when the window is
  empty, NULL for average and last. The stored days of the horizon become exactly these (only the differences
  are written, see ``writes.py``); older days are history and stay.
- Today's value is kept on the record as ``custom.<name>``, merged into its other custom fields. A record with
  rows only before the horizon, or holding the field from an earlier run but no longer any matching row, gets 0
  (count, sum, distinct_users) or loses the field (average, last: no value); a record that never had a row is
  left alone. Only records whose value changed are written (and have ``_updated_at`` bumped).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from planhat_pipelines.config.metrics import CalculatedMetric
from planhat_pipelines.metrics.writes import differs_sql, replace_rows
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.sql_quoting import quote_literal
from planhat_pipelines.store import ModelStore

#: Operations whose value over an empty window is 0 (the others have no value then).
ADDITIVE_OPERATIONS = ("count", "sum", "distinct_users")

#: The value of each windowed operation from the window's sums (``n`` rows, ``nv`` values, ``s`` their sum,
#: ``lv`` the latest value).
_WINDOWED_VALUE = {
    "count": "COALESCE(n, 0)",
    "sum": "COALESCE(s, 0)",
    "average": "s / NULLIF(nv, 0)",
    "last": "lv",
}
#: The order of rows for ``last``: date, then section and key (unique), so ties resolve the same every run.
_ROW_ORDER = "{'t': ts, 's': section, 'k': \"key\"}"


@dataclass(frozen=True)
class MetricResult:
    """What computing one calculated metric did.

    Attributes:
        name: The metric.
        records: Records with a value today.
        series_rows: Rows inserted or changed in ``calculated_metric_values``.
        records_changed: Records whose ``custom.<name>`` changed.
        latest_total: The sum of today's values.
        series_deleted: Rows of the horizon deleted because they are no longer produced.
    """

    name: str
    records: int
    series_rows: int
    records_changed: int
    latest_total: float
    series_deleted: int = 0

    def metadata(self) -> dict[str, int | float]:
        """Numeric metadata for the asset's materialization."""
        return {
            "records": self.records,
            "series_rows": self.series_rows,
            "series_deleted": self.series_deleted,
            "records_changed": self.records_changed,
            "latest_total": self.latest_total,
        }


def source_sql(metric: CalculatedMetric, *, bounded: bool = True) -> str:
    """SELECT of the metric's source rows: ``rid`` (record), ``d`` (day), ``ts``, ``v``, ``uid``, ``section``, ``key``.

    Parameters: ``$hi`` (rows before it), with ``bounded`` also ``$lo`` (rows from it on); ``$actions`` when the
    metric filters actions, ``$dimension`` for a metrics source.
    """
    rid = '"companyId"' if metric.model == "company" else '"recordId"'
    where = [f"{rid} IS NOT NULL", '"date" < CAST($hi AS TIMESTAMP)']
    if bounded:
        where.append('"date" >= CAST($lo AS TIMESTAMP)')
    if metric.model != "company":
        where.append(f"model = {quote_literal(metric.model)}")
    if metric.source == "activities":
        table, value = "user_activities", 'COALESCE("count", 1.0)'
        uid = "CASE WHEN model = 'enduser' THEN \"recordId\" END"
        if metric.actions:
            where.append("list_contains(CAST($actions AS VARCHAR[]), action)")
    else:
        table, value, uid = "custom_metrics", '"value"', "CAST(NULL AS VARCHAR)"
        where.append('"dimensionId" = $dimension')
    return (
        f'SELECT {rid} AS rid, CAST("date" AS DATE) AS d, "date" AS ts, CAST({value} AS DOUBLE) AS v, {uid} AS uid, '
        f'section, "key" FROM {table} WHERE {" AND ".join(where)}'
    )


def series_sql(metric: CalculatedMetric) -> str:
    """SELECT of the metric's series: ``"recordId"``, ``"day"``, ``"value"`` for each record and day of the horizon.

    Parameters: those of :func:`source_sql`, ``$start`` and ``$today``.
    """
    days = (
        "SELECT CAST(generate_series AS DATE) AS day "
        "FROM generate_series(CAST({first} AS TIMESTAMP), CAST($today AS TIMESTAMP), INTERVAL 1 DAY)"
    )
    preceding = metric.window_days - 1
    if metric.operation == "distinct_users":
        # Distinct users do not add up across days, so each day joins its window's rows (a range join).
        return f"""
WITH src AS ({source_sql(metric)}),
users AS (SELECT DISTINCT rid, d, uid FROM src WHERE uid IS NOT NULL),
recs AS (SELECT DISTINCT rid FROM src),
days AS ({days.format(first="$start")})
SELECT r.rid AS "recordId", days.day AS "day", CAST(count(DISTINCT u.uid) AS DOUBLE) AS "value"
FROM recs r CROSS JOIN days
LEFT JOIN users u ON u.rid = r.rid AND u.d BETWEEN days.day - {preceding} AND days.day
GROUP BY ALL"""
    # Pre-aggregated per record and day on a dense grid from the first day any window reaches, then summed over
    # a frame of window_days days (RANGE on the day, so the frame is right even where days have no rows).
    return f"""
WITH src AS ({source_sql(metric)}),
daily AS (SELECT rid, d, count(*) AS n, count(v) AS nv, sum(v) AS s,
                 arg_max(v, {_ROW_ORDER}) FILTER (WHERE v IS NOT NULL) AS lv,
                 max({_ROW_ORDER}) FILTER (WHERE v IS NOT NULL) AS lord
          FROM src GROUP BY rid, d),
recs AS (SELECT DISTINCT rid FROM daily),
days AS ({days.format(first="$lo")}),
grid AS (SELECT r.rid, days.day, daily.n, daily.nv, daily.s, daily.lv, daily.lord
         FROM recs r CROSS JOIN days LEFT JOIN daily ON daily.rid = r.rid AND daily.d = days.day),
win AS (SELECT rid, day, sum(n) OVER w AS n, sum(nv) OVER w AS nv, sum(s) OVER w AS s, arg_max(lv, lord) OVER w AS lv
        FROM grid
        WINDOW w AS (PARTITION BY rid ORDER BY day RANGE BETWEEN INTERVAL {preceding} DAYS PRECEDING AND CURRENT ROW))
SELECT rid AS "recordId", day AS "day", CAST({_WINDOWED_VALUE[metric.operation]} AS DOUBLE) AS "value"
FROM win WHERE day >= CAST($start AS DATE)"""


def _params(metric: CalculatedMetric, today: date, *, bounded: bool = True) -> dict[str, object]:
    """The named parameters of :func:`source_sql` (and, ``bounded``, of :func:`series_sql`)."""
    start = today - timedelta(days=metric.history_days - 1)
    params: dict[str, object] = {"hi": today + timedelta(days=1)}
    if bounded:
        params.update(lo=start - timedelta(days=metric.window_days - 1), start=start, today=today)
    if metric.actions:
        params["actions"] = list(metric.actions)
    if metric.source == "metrics":
        params["dimension"] = metric.dimension
    return params


def compute_metric(store: ModelStore, metric: CalculatedMetric, today: date) -> MetricResult:
    """Compute ``metric``'s series for the horizon ending ``today`` and keep today's value on each record.

    One transaction: a run that loses a commit race runs again whole and writes the same.

    Args:
        store: The model store.
        metric: The metric (see the module docstring for its rules).
        today: The last day computed.

    Returns:
        What changed, for the asset's metadata.
    """

    def compute() -> MetricResult:
        con = store.con
        params = _params(metric, today)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE __calc_new AS SELECT "
            f"{quote_literal(metric.name)} AS metric, {quote_literal(metric.model)} AS model, s.* "
            f"FROM ({series_sql(metric)}) s",
            params,
        )
        scope = 'metric = $metric AND "day" BETWEEN CAST($start AS DATE) AND CAST($today AS DATE)'
        replaced = replace_rows(
            con,
            target="calculated_metric_values",
            new="__calc_new",
            keys=("metric", "model", "recordId", "day"),
            values=("value",),
            scope=scope,
            params={"metric": metric.name, "start": params["start"], "today": today},
        )
        changed = _write_latest(store, metric, today)
        records, total = con.execute(
            'SELECT count("value"), COALESCE(sum("value"), 0) FROM __calc_new WHERE "day" = ?', [today]
        ).fetchall()[0]
        return MetricResult(metric.name, int(records), replaced.written, changed, float(total), replaced.deleted)

    return store.atomic(compute)


def _write_latest(store: ModelStore, metric: CalculatedMetric, today: date) -> int:
    """Write today's value (``__calc_new``) on each record with rows as ``custom.<name>`` where it differs.

    Returns:
        How many records changed.
    """
    con = store.con
    empty = "0.0" if metric.operation in ADDITIVE_OPERATIONS else "NULL"
    path = quote_literal("$." + metric.name)  # a metric name is lower-case snake case: a plain JSON path
    stored = f"TRY_CAST(json_extract_string(m.custom, {path}) AS DOUBLE)"
    table = q(metric.model)
    # Records with rows before the horizon only (or whose rows no longer match: the filter changed) are not in
    # __calc_new but had data, so they hold the field: their value is now the empty window's, so a metric that
    # stopped does not keep its last number for ever.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE __calc_latest AS
WITH ever AS (SELECT DISTINCT rid FROM ({source_sql(metric, bounded=False)}) src),
latest AS (SELECT e.rid, n."value", n."recordId" IS NOT NULL AS produced
           FROM ever e LEFT JOIN __calc_new n ON n."recordId" = e.rid AND n."day" = CAST($today AS DATE)),
target AS (SELECT m.id, CASE WHEN l.produced THEN l."value" ELSE {empty} END AS "value", {stored} AS stored
           FROM {table} m LEFT JOIN latest l ON l.rid = m.id
           WHERE l.rid IS NOT NULL OR json_exists(m.custom, {path}))
SELECT id, "value" FROM target WHERE {differs_sql('"value"', "stored")}""",
        {**_params(metric, today, bounded=False), "today": today},
    )
    changed = int(con.execute("SELECT count(*) FROM __calc_latest").fetchall()[0][0])
    if changed:
        # json_merge_patch keeps the other custom fields; a null value removes the key (no value today).
        con.execute(
            f"UPDATE {table} SET custom = json_merge_patch(COALESCE(custom, '{{}}'), "
            f'json_object({quote_literal(metric.name)}, l."value")), _updated_at = now() '
            f"FROM __calc_latest l WHERE {table}.id = l.id"
        )
    return changed
