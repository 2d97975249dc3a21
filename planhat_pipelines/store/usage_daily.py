"""A pre-aggregated daily usage series (``usage_daily``), so pages chart usage without reading the raw rows.

Grain: one row per (section, day, model, recordId, companyId, series) *per committed usage batch*. ``series`` is
the action of an activity or the dimensionId of a metric; ``rows`` counts the raw rows, ``total`` sums their
``count`` (activities) or ``value`` (metrics), ``last_at`` is their latest ``date``. A group that several batches
touched has several partial rows, so a reader always ``sum()``s over its groups (:func:`daily_usage` does).

Append-only, deliberately: a batch only INSERTs its partial rows, so two sections loading at once never contend
on a MERGE of the same group. It is exactly-once because a batch writes its partial rows in the same store
transaction as the usage rows they aggregate, from exactly the rows that transaction inserted (``__usage_new``,
see :meth:`Pass.load <planhat_pipelines.sync.usage.batch.Pass.load>`): a batch that rolls back leaves neither, a
retried commit runs again from the start, and rows already loaded (a re-run, the lookback) are not inserted
again, so they are not counted again. A row without a date belongs to no day and is left out of the series.

A store of an earlier release gets its series once, when :func:`~planhat_pipelines.store.schema.migrate` creates
the table: :func:`backfill_statements` aggregates every stored usage row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import duckdb

from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.sql_quoting import quote_literal as lit

USAGE_DAILY_DDL = """CREATE TABLE IF NOT EXISTS usage_daily (
        section VARCHAR NOT NULL, kind VARCHAR NOT NULL, "day" DATE NOT NULL, model VARCHAR NOT NULL,
        "recordId" VARCHAR, "companyId" VARCHAR, series VARCHAR, "rows" BIGINT NOT NULL, total DOUBLE,
        last_at TIMESTAMP)"""

#: Per usage kind: the raw column that names the series and the one that is summed into ``total``.
_SERIES_AND_TOTAL = {"activities": ('"action"', '"count"'), "metrics": ('"dimensionId"', '"value"')}


def aggregate_sql(kind: str, source: str) -> str:
    """INSERT of ``source``'s dated rows into ``usage_daily``, one partial row per group.

    Args:
        kind: ``"activities"`` or ``"metrics"``.
        source: A table with the usage table's columns: the batch's newly inserted rows (``__usage_new``), or the
            whole ``user_activities`` / ``custom_metrics`` table for the backfill.

    Raises:
        PlanhatPipelinesError: ``kind`` is neither.
    """
    if kind not in _SERIES_AND_TOTAL:
        raise PlanhatPipelinesError(
            f"usage_daily: unknown usage kind {kind!r}. Fix: use one of {', '.join(sorted(_SERIES_AND_TOTAL))}"
        )
    series, total = _SERIES_AND_TOTAL[kind]
    return (
        'INSERT INTO usage_daily (section, kind, "day", model, "recordId", "companyId", series, "rows", total, '
        f'last_at) SELECT section, {lit(kind)}, CAST("date" AS DATE), model, "recordId", "companyId", {series}, '
        f'count(*), sum({total}), max("date") FROM {source} WHERE "date" IS NOT NULL '
        f'GROUP BY section, CAST("date" AS DATE), model, "recordId", "companyId", {series}'
    )


def backfill_statements(tables: Mapping[str, str]) -> list[str]:
    """One aggregate INSERT per usage table (``tables``: kind -> table), for a store that had no series yet."""
    return [aggregate_sql(kind, table) for kind, table in tables.items()]


def daily_usage(
    con: duckdb.DuckDBPyConnection,
    *,
    company_id: str | None = None,
    record_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> list[tuple[date, str, str, int, float, int]]:
    """The usage per day and series, from ``usage_daily`` (no raw row is read).

    Args:
        con: A store connection (``ModelStore.con``).
        company_id: Only this company's usage.
        record_id: Only this record's usage (an End User's or Company's id).
        since: The first day, inclusive.
        until: The last day, inclusive.

    Returns:
        (day, kind, series, rows, total, distinct_end_users), ordered by day, kind and series. ``total`` is the
        summed count (activities) or value (metrics), 0.0 when none of the rows has one; ``distinct_end_users``
        counts the End Users with usage on the day in that series (0 for usage on other models).

    Raises:
        PlanhatPipelinesError: ``since`` is after ``until``.
    """
    if since is not None and until is not None and since > until:
        raise PlanhatPipelinesError(
            f"daily_usage: since {since} is after until {until}. Fix: pass a since on or before until"
        )
    conditions: list[str] = []
    params: list[object] = []
    for condition, value in (
        ('"companyId" = ?', company_id),
        ('"recordId" = ?', record_id),
        ('"day" >= ?', since),
        ('"day" <= ?', until),
    ):
        if value is not None:
            conditions.append(condition)
            params.append(value)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = con.execute(
        'SELECT "day", kind, series, sum("rows"), COALESCE(sum(total), 0.0), '
        "count(DISTINCT \"recordId\") FILTER (WHERE model = 'enduser') "
        f'FROM usage_daily{where} GROUP BY "day", kind, series ORDER BY "day", kind, series',
        params,
    ).fetchall()
    return [(day, kind, series, int(n), float(total), int(users)) for day, kind, series, n, total, users in rows]
